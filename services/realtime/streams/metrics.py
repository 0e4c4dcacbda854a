"""Prometheus metrics of the streams.

Hot-path counts are plain integers on :class:`StreamStats` (no lock per delivery); a
collector reads them at scrape time. Latency is observed once per frame.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector


class LatencyHistogram:
    """A histogram observed once per frame from the event loop only: plain counts, no lock
    (prometheus_client's ``Histogram.observe`` took a lock per frame, ~4 % of the CPU
    at load); the collector reads it at scrape time."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.total)


DELIVERY_LATENCY = LatencyHistogram(
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
)


@dataclass
class StreamStats:
    """One node's counters; ``connections`` and ``subscriptions`` are current values."""

    price_connections: int = 0
    alert_connections: int = 0
    client_subscriptions: int = 0  # (socket, ticker) pairs
    nats_subscriptions: int = 0  # ticker subscriptions held on NATS
    ticks_received: int = 0
    delivered: int = 0  # quotes written to sockets
    frames: int = 0
    conflated: int = 0  # quotes replaced by a newer one before they were written
    dropped: int = 0  # quotes discarded (socket closing, too slow)
    alerts_delivered: int = 0
    slow_disconnects: int = 0


_live: weakref.WeakSet[StatsOwner] = weakref.WeakSet()


class StatsOwner:
    """Something that holds a :class:`StreamStats` (a hub); registered while alive."""

    stats: StreamStats

    def register_stats(self) -> None:
        _live.add(self)


class _Collector(Collector):
    def collect(
        self,
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        stats = [owner.stats for owner in list(_live)]
        connections = GaugeMetricFamily(
            "realtime_connections", "Open WebSocket connections", labels=["stream"]
        )
        connections.add_metric(["prices"], sum(s.price_connections for s in stats))
        connections.add_metric(["alerts"], sum(s.alert_connections for s in stats))
        yield connections
        yield GaugeMetricFamily(
            "realtime_client_subscriptions",
            "Ticker subscriptions of price sockets",
            value=sum(s.client_subscriptions for s in stats),
        )
        yield GaugeMetricFamily(
            "realtime_nats_subscriptions",
            "Ticker subscriptions this node holds on NATS",
            value=sum(s.nats_subscriptions for s in stats),
        )
        for name, doc, attr in (
            ("realtime_ticks_received", "Ticks received from NATS", "ticks_received"),
            ("realtime_messages_delivered", "Quotes written to sockets", "delivered"),
            ("realtime_frames_sent", "Frames written to price sockets", "frames"),
            ("realtime_messages_conflated", "Quotes replaced by newer ones", "conflated"),
            ("realtime_messages_dropped", "Quotes discarded", "dropped"),
            ("realtime_alerts_delivered", "Alerts written to sockets", "alerts_delivered"),
            (
                "realtime_slow_consumer_disconnects",
                "Sockets closed as too slow",
                "slow_disconnects",
            ),
        ):
            yield CounterMetricFamily(name, doc, value=sum(getattr(s, attr) for s in stats))
        yield DELIVERY_LATENCY.family(
            "realtime_delivery_latency_seconds",
            "From a tick's arrival on this node to the write of the frame carrying it",
        )


_registered = False


def install_collector() -> None:
    """Register the collector once per process."""
    global _registered
    if not _registered:
        REGISTRY.register(_Collector())
        _registered = True
