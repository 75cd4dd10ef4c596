"""Prometheus metrics of one app (its own registry, so several apps can live in a process).

With an exchange log (``LLMRELAY_DATABASE_URL``), its writer's counts are read at each
scrape: ``llmrelay_log_pending_writes`` (accepted, not yet written, in memory),
``llmrelay_log_written_rows_total``, ``llmrelay_log_spilled_rows_total`` (to the local spill
file), ``llmrelay_log_replayed_rows_total`` (from it), ``llmrelay_log_failed_writes_total``
(failed batches, retried), ``llmrelay_log_rejected_rows_total`` (refused by the database,
kept aside), ``llmrelay_log_lost_rows_total`` (neither written nor spilled) and
``llmrelay_log_spill_files``.

Label values are bounded: a provider/model pair is used as given for the first
``max_label_sets`` pairs seen, then ``"other"`` (a client cannot grow the series without
bound by sending made-up model names; unresolved requests have provider ``""``).
``child(metric, *values)`` returns a metric's labelled series from a dictionary once it
has been made (``prometheus_client``'s ``labels()`` takes a lock, checks and joins the
values on every call: about a tenth of the chat route's per-request metrics cost).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)


class Metrics:
    """The server's counters, histograms and gauge."""

    def __init__(self, max_label_sets: int = 256) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._seen: set[tuple[str, str]] = set()
        self._max = max_label_sets
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "llmrelay_server_requests",
            "Requests answered, by endpoint, provider, model and HTTP status.",
            ["endpoint", "provider", "model", "status"],
            registry=r,
        )
        self.errors = Counter(
            "llmrelay_server_errors",
            "Failed requests and streams, by provider, model and error type.",
            ["provider", "model", "error_type"],
            registry=r,
        )
        self.first_token = Histogram(
            "llmrelay_server_time_to_first_token_seconds",
            "Seconds from the request to the first content (the end of the open phase).",
            ["provider", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "llmrelay_server_request_duration_seconds",
            "Seconds from the request to the end of its answer (or stream).",
            ["endpoint", "provider", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.deltas = Counter(
            "llmrelay_server_streamed_deltas",
            "Text deltas (about one token each) sent to clients.",
            ["provider", "model"],
            registry=r,
        )
        self.tokens = Counter(
            "llmrelay_server_completion_tokens",
            "Completion tokens reported by providers' usage.",
            ["provider", "model"],
            registry=r,
        )
        self.queued = Counter(
            "llmrelay_server_queued_requests",
            "Requests a service reported queued (a Queued event) before their first content.",
            registry=r,
        )
        self.queue_wait = Histogram(
            "llmrelay_server_queue_wait_seconds",
            "Seconds from a request's first queue report to its first content (or its end).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.skipped = Counter(
            "llmrelay_server_skipped_events",
            "Upstream stream events that could not be parsed and were skipped.",
            ["provider", "model"],
            registry=r,
        )
        self.in_flight = Gauge(
            "llmrelay_server_streams_in_flight",
            "Streaming responses currently open.",
            registry=r,
        )

    def watch_log(self, writer: Any) -> None:
        """Export the counts of ``writer`` (an ``llmrelay.log.LogWriter``) at each scrape."""
        self.registry.register(_LogCollector(writer))

    def labels(self, provider: str | None, model: str | None) -> tuple[str, str]:
        """Bounded ``(provider, model)`` label values."""
        pair = (provider or "", model or "")
        if pair in self._seen:
            return pair
        if len(self._seen) < self._max:
            self._seen.add(pair)
            return pair
        return ("other", "other")

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, made once and then taken from a dictionary.

        Args:
            metric: one of this object's labelled metrics (``requests``, ``duration`` ...).
            values: its label values, in the order of its label names (bounded: the
                provider/model pairs come from ``labels``, the rest from fixed sets).

        Returns:
            The labelled series (``inc``/``observe`` on it count in ``render``).
        """
        key = (metric, values)
        series = self._children.get(key)
        if series is None:
            series = self._children[key] = metric.labels(*values)
        return series

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


_LOG_COUNTERS = (
    ("written", "llmrelay_log_written_rows", "Exchange-log rows written to the database."),
    ("spilled", "llmrelay_log_spilled_rows", "Exchange-log rows written to the spill file."),
    ("replayed", "llmrelay_log_replayed_rows", "Exchange-log rows replayed from spill files."),
    ("failed", "llmrelay_log_failed_writes", "Exchange-log batch writes that failed (retried)."),
    ("rejected", "llmrelay_log_rejected_rows", "Exchange-log rows the database refused."),
    ("lost", "llmrelay_log_lost_rows", "Exchange-log rows neither written nor spilled."),
)


class _LogCollector(Collector):
    """The exchange-log writer's ``stats()`` as Prometheus metrics, read at each scrape."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        stats = self._writer.stats()
        yield GaugeMetricFamily(
            "llmrelay_log_pending_writes",
            "Exchange-log rows accepted and not yet written (in memory).",
            value=stats.pending,
        )
        yield GaugeMetricFamily(
            "llmrelay_log_spill_files",
            "Spill files waiting to be replayed into the database.",
            value=stats.spill_files,
        )
        for name, metric, documentation in _LOG_COUNTERS:
            yield CounterMetricFamily(metric, documentation, value=getattr(stats, name))
