"""Prometheus metrics, one `CollectorRegistry` per app.

Nothing here touches prometheus-client's process-wide default registry, so two
apps in one process (tests) never share a counter. Other modules report through
the named methods below rather than calling prometheus-client themselves; the
hot paths (publish, write) only add to counters and, for a sample of frames,
observe one histogram.

Labels are small closed sets: event type, method, outcome, reason, scope.
Never a client id, channel id or anything a caller can invent: the publish API
lets a site's backend name its own events, so an event name outside the
built-in ones and METRICS_EVENT_NAMES is counted as `other` (one label per
order id would grow the registry, and every scrape, without bound).
"""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

from sse.broker import Delivery

PREFIX = "channel_push_"
DISCONNECT_REASONS = ("client_closed", "token_expired", "max_lifetime", "slow_client", "shutdown", "client_connection_limit")
RATE_LIMIT_SCOPES = ("function_channel", "function_client", "connect_ip", "connect_client", "publish_key")
PUBLISH_TARGETS = ("client", "topic", "all", "none")
WRITE_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CALL_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STREAM_LIFETIME_BUCKETS = (1, 10, 60, 300, 900, 1800, 3600, 7200)
BUILTIN_EVENT_NAMES = ("redirect", "notification", "custom")
OTHER_EVENT = "other"


class LabelledChildren:
    """One metric's children by label values, each looked up once.

    prometheus-client's `labels()` validates its arguments and takes a lock on
    every call (about 2 us, four times per function call); the label sets here
    are closed, so the children are kept.
    """

    def __init__(self, metric: Counter | Histogram) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Counter | Histogram] = {}

    def __call__(self, *values: str):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Tally:
    """A count for a per-delivery path, exposed as a counter when scraped: a
    plain integer add, where a prometheus Counter takes a lock on every `inc`."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class TallyCollector:
    def __init__(self, name: str, documentation: str, tally: Tally) -> None:
        self._name = name
        self._documentation = documentation
        self._tally = tally

    def collect(self):
        yield CounterMetricFamily(self._name, self._documentation, value=self._tally.count)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, event_names: Iterable[str] = ()) -> None:
        self._event_names = frozenset(BUILTIN_EVENT_NAMES).union(event_names)
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self._process = ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)

        self.connections_open = Gauge(PREFIX + "connections_open", "SSE streams open on this instance", registry=registry)
        self.clients_connected = Gauge(
            PREFIX + "clients_connected", "distinct clientIds with a stream on this instance", registry=registry
        )
        self.connects = Counter(PREFIX + "connects", "SSE streams opened", registry=registry)
        self.connects_refused = Counter(
            PREFIX + "connects_refused", "SSE connects answered with an error, by reason", ["reason"], registry=registry
        )
        self.disconnects = Counter(PREFIX + "disconnects", "SSE streams ended, by reason", ["reason"], registry=registry)
        self.connection_seconds = Histogram(
            PREFIX + "connection_duration_seconds", "how long SSE streams stayed open", buckets=STREAM_LIFETIME_BUCKETS,
            registry=registry,
        )
        self.events_published = Counter(
            PREFIX + "events_published", "events published (one per call or broadcast)", ["event"], registry=registry
        )
        self.events_delivered = Counter(
            PREFIX + "events_delivered", "connections that accepted an event", ["event"], registry=registry
        )
        self.events_dropped = Counter(
            PREFIX + "events_dropped",
            "events not delivered: not_connected (no stream for the client), slow_client (its queue was full)",
            ["event", "reason"],
            registry=registry,
        )
        self.function_calls = Counter(
            PREFIX + "function_calls", "function calls, by method and outcome (ok or error type)", ["method", "outcome"],
            registry=registry,
        )
        self.function_seconds = Histogram(
            PREFIX + "function_duration_seconds", "function call handling time", ["method"],
            buckets=CALL_LATENCY_BUCKETS, registry=registry,
        )
        self.publish_calls = Counter(
            PREFIX + "publish_api_calls",
            "POST /api/publish requests, by target kind (client, topic, all; none when refused before parsing) and outcome",
            ["target", "outcome"], registry=registry,
        )
        self.publish_seconds = Histogram(
            PREFIX + "publish_api_duration_seconds", "publish API request handling time", buckets=CALL_LATENCY_BUCKETS,
            registry=registry,
        )
        self.publish_to_write_seconds = Histogram(
            PREFIX + "publish_to_write_seconds",
            "time an event frame waited in a stream's queue before its write (sampled; frames written at publish"
            " time do not wait and are counted by frames_written_at_publish_total instead)",
            buckets=WRITE_LATENCY_BUCKETS, registry=registry,
        )
        self.written_at_publish = Tally()
        registry.register(
            TallyCollector(
                PREFIX + "frames_written_at_publish",
                "event frames written to an idle stream's socket by the publisher itself, without queueing",
                self.written_at_publish,
            )
        )
        self.rate_limited_total = Counter(
            PREFIX + "rate_limited", "requests refused by a rate limit, by scope", ["scope"], registry=registry
        )
        self.broker_up = Gauge(PREFIX + "broker_up", "1 when the broker answers, else 0", ["backend"], registry=registry)
        self.draining = Gauge(PREFIX + "draining", "1 while the instance drains for shutdown", registry=registry)
        self._published = LabelledChildren(self.events_published)
        self._delivered = LabelledChildren(self.events_delivered)
        self._dropped = LabelledChildren(self.events_dropped)
        self._calls = LabelledChildren(self.function_calls)
        self._call_seconds = LabelledChildren(self.function_seconds)
        for reason in DISCONNECT_REASONS:
            self.disconnects.labels(reason)
        for scope in RATE_LIMIT_SCOPES:
            self.rate_limited_total.labels(scope)

    # Wiring: gauges read live values when scraped, so nothing updates them on the hot path.
    def watch(self, connections: Callable[[], float], clients: Callable[[], float], draining: Callable[[], bool]) -> None:
        self.connections_open.set_function(connections)
        self.clients_connected.set_function(clients)
        self.draining.set_function(lambda: float(draining()))

    # Reports from the rest of the app.
    def connection_opened(self) -> None:
        self.connects.inc()

    def connection_closed(self, reason: str, seconds: float) -> None:
        self.disconnects.labels(reason).inc()
        self.connection_seconds.observe(seconds)

    def connect_refused(self, reason: str) -> None:
        self.connects_refused.labels(reason).inc()

    def published(self, event_name: str, delivery: Delivery) -> None:
        label = event_name if event_name in self._event_names else OTHER_EVENT
        self._published(label).inc()
        if delivery.delivered:
            self._delivered(label).inc(delivery.delivered)
        if delivery.dropped:
            self._dropped(label, "slow_client").inc(delivery.dropped)
        if delivery.event_id is None:
            self._dropped(label, "not_connected").inc()

    def frame_written(self, seconds_since_queued: float) -> None:
        self.publish_to_write_seconds.observe(seconds_since_queued)

    def function_called(self, method: str, outcome: str, seconds: float) -> None:
        self._calls(method, outcome).inc()
        self._call_seconds(method).observe(seconds)

    def publish_called(self, target: str, outcome: str, seconds: float) -> None:
        """`outcome` is "ok" or the error type answered (a closed set, see publish_api.py)."""
        self.publish_calls.labels(target if target in PUBLISH_TARGETS else "none", outcome).inc()
        self.publish_seconds.observe(seconds)

    def rate_limited(self, scope: str) -> None:
        """Called by the rate-limit checks: scope is function_channel, function_client,
        connect_ip, connect_client or publish_key."""
        self.rate_limited_total.labels(scope).inc()

    def broker_state(self, backend: str, healthy: bool) -> None:
        self.broker_up.labels(backend).set(1.0 if healthy else 0.0)

    # Reading.
    def render(self) -> bytes:
        return generate_latest(self.registry)

    def totals(self) -> dict[str, float]:
        """Running totals for the status stream's rates."""
        return {
            "events_published": _total(self.events_published),
            "events_delivered": _total(self.events_delivered),
            "events_dropped": _total(self.events_dropped),
            "function_calls": _total(self.function_calls),
            "publish_calls": _total(self.publish_calls),
            "connects": _total(self.connects),
            "disconnects": _total(self.disconnects),
        }

    def process_sample(self) -> tuple[float | None, float | None]:
        """(resident memory bytes, CPU seconds used) from prometheus-client's process
        collector; (None, None) where the platform has no /proc."""
        rss = cpu = None
        for family in self._process.collect():
            for sample in family.samples:
                if sample.name == "process_resident_memory_bytes":
                    rss = sample.value
                elif sample.name == "process_cpu_seconds_total":
                    cpu = sample.value
        return rss, cpu


def _total(counter: Counter) -> float:
    return sum(
        sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )
