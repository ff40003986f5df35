"""Prometheus metrics of one gateway app, on a registry of its own, rendered for `/metrics`.

Never touches prometheus_client's global REGISTRY: several apps (and tests) in one process must not collide.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Upstream latencies: local emulator calls take ~1 ms, Twilio 50-500 ms, timeouts up to ~10 s.
UPSTREAM_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Children:
    """A labelled metric's children, each looked up once: prometheus-client's `labels` builds a tuple and takes a
    lock on every call, a visible cost on paths that count every request or event. At most `bound` children are
    remembered (forgotten all at once past it: a label set without end cannot grow this without end)."""

    __slots__ = ("_bound", "_children", "_metric")

    def __init__(self, metric: Any, bound: int = 4096) -> None:
        self._metric = metric
        self._bound = bound
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            if len(self._children) >= self._bound:
                self._children.clear()
            child = self._children[labels] = self._metric.labels(*labels)
        return child


class Metrics:
    """Every metric the gateway exports. Build one per app; pass it to whatever records.

    Others register extra metrics on `registry` (or add them here, next to the ones below).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        # Upstream (Twilio) calls: one sample per HTTP attempt, retries included.
        self.upstream_requests = Counter(
            "delivery_gateway_upstream_requests_total",
            "HTTP attempts to the Twilio API, by method, templated route and status "
            "(HTTP code, or timeout / connection_error).",
            ("method", "route", "status"),
            registry=r,
        )
        self.upstream_latency = Histogram(
            "delivery_gateway_upstream_request_duration_seconds",
            "Duration of one HTTP attempt to the Twilio API.",
            ("method", "route"),
            buckets=UPSTREAM_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_retries = Counter(
            "delivery_gateway_upstream_retries_total",
            "Upstream attempts that were retried, by reason (429, 5xx, connection_error, timeout).",
            ("method", "route", "reason"),
            registry=r,
        )
        self.upstream_coalesced = Counter(
            "delivery_gateway_upstream_coalesced_total",
            "Upstream reads served by joining an identical in-flight call instead of making a new one.",
            ("route",),
            registry=r,
        )
        self.upstream_circuit_open = Gauge(
            "delivery_gateway_upstream_circuit_open",
            "1 while the upstream circuit breaker rejects calls (open), else 0.",
            registry=r,
        )
        self.upstream_circuit_rejections = Counter(
            "delivery_gateway_upstream_circuit_rejections_total",
            "Upstream calls refused without an HTTP attempt because the circuit breaker was open.",
            ("method", "route"),
            registry=r,
        )

        # Resource cache.
        self.cache_requests = Counter(
            "delivery_gateway_cache_requests_total",
            "Resource cache lookups per key, by resource kind and result (hit / miss).",
            ("kind", "result"),
            registry=r,
        )

        # Response cache (whole answers of queries).
        self.response_cache_requests = Counter(
            "delivery_gateway_response_cache_requests_total",
            "GraphQL requests the response cache saw, by result: hit, miss (executed and stored when still fresh), "
            "uncacheable (mutations, errors, fields it never caches), error (its store failed).",
            ("result",),
            registry=r,
        )
        self.response_cache_invalidations = Counter(
            "delivery_gateway_response_cache_invalidations_total",
            "Conversations and messages whose cached responses were invalidated, by reason (the webhook event, "
            "mutation, replica: received from another replica).",
            ("reason",),
            registry=r,
        )
        self.response_cache_dropped = Counter(
            "delivery_gateway_response_cache_dropped_total",
            "Cached responses dropped by invalidations.",
            registry=r,
        )

        # Others' room: webhooks, subscriptions, pub/sub.
        self.webhooks_received = Counter(
            "delivery_gateway_webhooks_received_total",
            "Twilio webhooks received, by event type and outcome (accepted, rejected, malformed, ignored, "
            "foreign_account, unavailable, duplicate, ...).",
            ("event_type", "outcome"),
            registry=r,
        )
        self.subscriptions_active = Gauge(
            "delivery_gateway_subscriptions_active",
            "GraphQL subscriptions currently open.",
            registry=r,
        )
        self.subscription_events = Counter(
            "delivery_gateway_subscription_events_total",
            "Subscription events resolved, by outcome: executed, or shared (the result of another subscriber's "
            "execution of the same subscription, variables and caller scope, sent as the same serialised payload).",
            ("outcome",),
            registry=r,
        )
        self.pubsub_messages = Counter(
            "delivery_gateway_pubsub_messages_total",
            "Pub/sub messages, by direction (published / received).",
            ("direction",),
            registry=r,
        )

        # Reconciliation (reconcile/): receipts re-read from REST because a webhook may have been lost.
        self.reconcile_tracked = Gauge(
            "delivery_gateway_reconcile_tracked_receipts",
            "Receipts tracked for reconciliation (seen in a state that can still change, inside the window), "
            "across every replica sharing the ledger; as of this process's last pass.",
            registry=r,
        )
        self.reconcile_polled = Counter(
            "delivery_gateway_reconcile_polled_receipts_total",
            "Tracked receipts this process re-read from Twilio (one receipts list per message).",
            registry=r,
        )
        self.reconcile_polls = Counter(
            "delivery_gateway_reconcile_polls_total",
            "Receipts lists the reconciler requested, by outcome (ok, gone, rate_limited, error).",
            ("outcome",),
            registry=r,
        )
        self.reconcile_changes = Counter(
            "delivery_gateway_reconcile_changes_total",
            "Receipt changes reconciliation found that no webhook had brought, by the receipt's new status.",
            ("status",),
            registry=r,
        )
        self.reconcile_lag = Gauge(
            "delivery_gateway_reconcile_lag_seconds",
            "How long the most overdue tracked receipt has waited past its re-read time (0: keeping up), "
            "at the start of this process's last pass.",
            registry=r,
        )

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample (0.0 when absent); for tests and debugging."""
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its Content-Type, for a `/metrics` response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
