"""Prometheus metrics of one app: requests and search stages as they happen, the index and catalog at scrape time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from indexer.generation import Manifest
from search_api.services.generations import SearchService

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _age_seconds(timestamp: str | None, now: datetime | None = None) -> float | None:
    """Seconds since an ISO 8601 time (the catalog's and the manifests' format); None if unreadable."""
    if not timestamp:
        return None
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())


def generation_age_seconds(manifest: Manifest) -> float | None:
    """How long ago a generation was built."""
    return _age_seconds(manifest.created_at)


def _timestamp(value: str | None) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp() if value else None
    except ValueError:
        return None


def folder_bytes(folder: Path) -> int:
    """Bytes on disk of every file under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


class ServiceCollector(Collector):
    """Gauges read from the service when scraped: the generation served, documents by status, the last build."""

    def __init__(self, service: Callable[[], SearchService | None]) -> None:
        self._service = service
        self._bytes: dict[str, int] = {}  # a generation is immutable: measure each once

    def collect(self) -> Iterator[Metric]:
        """The current values (none before the service has started)."""
        service = self._service()
        if service is None:
            return
        yield from self._generation(service)
        by_status = GaugeMetricFamily("moocsearch_documents", "Documents in the catalog by status.", labels=["status"])
        for status, count in sorted(service.catalog.count_by_status().items()):
            by_status.add_metric([status], count)
        yield by_status
        yield from self._last_build(service)

    def _generation(self, service: SearchService) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "moocsearch_degraded",
            "1 when a newer generation was refused (see /health).",
            value=int(bool(service.problem)),
        )
        searcher = service.current_searcher
        if searcher is None:
            return
        manifest = searcher.reader.manifest
        info = GaugeMetricFamily("moocsearch_generation_info", "The generation served.", labels=["generation", "model"])
        info.add_metric([manifest.generation_id, manifest.model_id], 1)
        yield info
        yield GaugeMetricFamily("moocsearch_index_passages", "Passages in the served index.", manifest.passage_count)
        yield GaugeMetricFamily("moocsearch_index_documents", "Documents in the served index.", manifest.document_count)
        size = self._bytes.get(manifest.generation_id)
        if size is None:
            size = self._bytes[manifest.generation_id] = folder_bytes(searcher.reader.folder)
        yield GaugeMetricFamily("moocsearch_index_bytes", "Bytes on disk of the served generation.", size)
        age = generation_age_seconds(manifest)
        if age is not None:
            yield GaugeMetricFamily("moocsearch_generation_age_seconds", "Age of the served generation.", age)

    def _last_build(self, service: SearchService) -> Iterator[Metric]:
        build = service.catalog.last_finished_build()
        if build is None:
            return
        finished = _timestamp(build["finished_at"])
        started = _timestamp(build["started_at"])
        if finished is not None:
            yield GaugeMetricFamily(
                "moocsearch_last_build_timestamp_seconds", "When the last build ended (Unix time).", finished
            )
            if started is not None:
                yield GaugeMetricFamily(
                    "moocsearch_last_build_duration_seconds", "How long the last build took.", finished - started
                )
        outcome = GaugeMetricFamily(
            "moocsearch_last_build_success",
            "1 when the last build succeeded (published a generation, or found nothing changed).",
            labels=["outcome"],
        )
        outcome.add_metric([build["outcome"]], int(build["outcome"] in ("published", "unchanged")))
        yield outcome


# Series derived from the catalog or the index, which hold member-only and pending documents: an admin's only.
_CATALOG_FAMILIES = frozenset(
    {"moocsearch_documents", "moocsearch_index_passages", "moocsearch_index_documents", "moocsearch_index_bytes"}
)
# Request series of these routes tell who uploads, edits or administers (counts of uploads are counts of
# documents, hidden ones included): an admin's only.
_PRIVATE_ROUTE_PREFIXES = ("/documents", "/admin")


def _public_sample(sample: Sample) -> bool:
    method, route = sample.labels.get("method"), sample.labels.get("route")
    if method is None and route is None:
        return True
    return method in ("GET", "HEAD") and not (route or "").startswith(_PRIVATE_ROUTE_PREFIXES)


class PublicView(Collector):
    """What `metrics_public` serves without a key: `registry` without the catalog's series and without the
    request series of the write, document and admin routes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        """The public families, with only the public samples."""
        for family in self._registry.collect():
            if family.name in _CATALOG_FAMILIES:
                continue
            public = Metric(family.name, family.documentation, family.type, family.unit)
            public.samples = [sample for sample in family.samples if _public_sample(sample)]
            yield public


class Metrics:
    """The metrics of one app, in a registry of its own (several apps may live in one test process)."""

    def __init__(self, service: Callable[[], SearchService | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "moocsearch_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "moocsearch_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.search_stages = Histogram(
            "moocsearch_search_stage_seconds",
            "Search latency by stage (dense:<model>, lexical, fetch, ...).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(ServiceCollector(service))
        self.public_registry = CollectorRegistry(auto_describe=False)
        self.public_registry.register(PublicView(self.registry))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a finished request and its latency."""
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def observe_search(self, seconds: Mapping[str, float]) -> None:
        """Record the per-stage timings of one search."""
        for stage, value in seconds.items():
            self.search_stages.labels(stage).observe(value)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)

    def render_public(self) -> bytes:
        """The metrics that say nothing about the catalog (`PublicView`), in the Prometheus text format."""
        return generate_latest(self.public_registry)
