"""Prometheus metrics of one app (its own registry, so several apps can live in a process).

Label values are bounded: a provider/model pair is used as given for the first
``max_label_sets`` pairs seen, then ``"other"`` (a client cannot grow the series without
bound by sending made-up model names; unresolved requests have provider ``""``).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)


class Metrics:
    """The server's counters, histograms and gauge."""

    def __init__(self, max_label_sets: int = 256) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._seen: set[tuple[str, str]] = set()
        self._max = max_label_sets
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

    def labels(self, provider: str | None, model: str | None) -> tuple[str, str]:
        """Bounded ``(provider, model)`` label values."""
        pair = (provider or "", model or "")
        if pair in self._seen:
            return pair
        if len(self._seen) < self._max:
            self._seen.add(pair)
            return pair
        return ("other", "other")

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
