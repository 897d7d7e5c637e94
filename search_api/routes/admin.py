"""Operator routes (admin key only): start a rebuild, read the build records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from indexer.catalog import TRIGGER_ADMIN
from search_api.auth import require_admin
from search_api.errors import ApiError, error_responses
from search_api.operations.buildrunner import BuildAlreadyRunning, BuildRunner
from search_api.schemas import BuildListOut, BuildOut, BuildStartedOut

# SQLite's integers are 64-bit: a larger id or offset would raise OverflowError deep in the query (a 500).
SQLITE_MAX_INT = 2**63 - 1

router = APIRouter(prefix="/admin", tags=["operations"], dependencies=[Depends(require_admin)])

_AUTH_ERRORS = error_responses(
    401, 403, s401="No API key, or an invalid one.", s403="The key is a member's, not an admin's."
)


def get_build_runner(request: Request) -> BuildRunner:
    """The build runner created in the app's lifespan."""
    runner: BuildRunner = request.app.state.build_runner
    return runner


BuildRunnerDep = Annotated[BuildRunner, Depends(get_build_runner)]


@router.post(
    "/rebuild",
    status_code=202,
    response_model=BuildStartedOut,
    responses={
        **_AUTH_ERRORS,
        **error_responses(409, s409="A build is already running (the refused request leaves no build record)."),
    },
)
def rebuild(runner: BuildRunnerDep, response: Response) -> BuildStartedOut:
    """Start an incremental build now, in a separate process; the service keeps serving and switches to the new
    generation when it is published. The answer comes at once, with the build's id.

    While a build runs the answer is 409 and nothing is recorded: the running build has its record, and retries
    must not fill the records with refusals. A build counts as over once its record is finished."""
    try:
        started = runner.start(TRIGGER_ADMIN, record_refusal=False)
    except BuildAlreadyRunning as exc:
        raise ApiError(409, "build_already_running", str(exc)) from None
    response.headers["Location"] = f"/admin/builds/{started.build_id}"
    return BuildStartedOut(build_id=started.build_id, pid=started.pid)


@router.get("/builds", response_model=BuildListOut, responses=_AUTH_ERRORS)
def list_builds(
    runner: BuildRunnerDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Records per page.")] = 20,
    offset: Annotated[int, Query(ge=0, le=SQLITE_MAX_INT, description="Records to skip (newest first).")] = 0,
) -> BuildListOut:
    """Build records, newest first: trigger, outcome, counts, seconds per stage, published generation."""
    records = runner.catalog.list_builds(limit=limit, offset=offset)
    return BuildListOut(
        builds=[BuildOut.model_validate(record.to_dict()) for record in records],
        total=runner.catalog.count_builds(),
        limit=limit,
        offset=offset,
    )


@router.get(
    "/builds/{build_id}",
    response_model=BuildOut,
    responses={**_AUTH_ERRORS, **error_responses(404, s404="No such build.")},
)
def get_build(runner: BuildRunnerDep, build_id: Annotated[int, Path(ge=1, le=SQLITE_MAX_INT)]) -> BuildOut:
    """One build record."""
    record = runner.catalog.get_build(build_id)
    if record is None:
        raise ApiError(404, "not_found", f"no build {build_id}")
    return BuildOut.model_validate(record.to_dict())
