"""One way to make an Indexer from the service's settings: its encoders, and the quality gate when it is on.

`moocsearch index build` (and so every build the service starts), `serve`'s first-run build, evaluation and the
benchmark scripts all open their Indexer here, so a build always embeds with the encoders the service queries
with and checks the golden queries through the service's own search.
"""

from __future__ import annotations

from indexer.pipeline import Indexer
from search_api.factory import QueryModels, load_encoders, load_query_models
from search_api.operations.gate import generation_search
from search_api.settings import ApiSettings


def open_indexer(settings: ApiSettings, models: QueryModels | None = None, gate: bool = True) -> Indexer:
    """An Indexer of `settings.data_dir` embedding with `models` (default: the configured ones, loaded now).

    With `gate` and `settings.quality_gate`, its builds check the golden queries with `models`' encoders and
    reranker; otherwise no reranker is loaded. The caller closes it (`contextlib.closing`). Raises
    UnknownModelError for an unknown encoder and RerankerError for a reranker folder without a model."""
    gated = gate and settings.quality_gate
    if models is None:
        models = load_query_models(settings) if gated else QueryModels(load_encoders(settings))
    elif gated and models.reranker is None and settings.reranker_model.strip():
        models = load_query_models(settings, models.encoders)  # the gate ranks as `serve` does, reranker included
    primary, *extra = models.encoders
    quality_search = generation_search(settings, models) if gated else None
    return Indexer(settings, primary, extra, quality_search=quality_search)
