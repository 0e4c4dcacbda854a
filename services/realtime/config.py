"""Settings of the realtime service (``REALTIME_*``)."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RealtimeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REALTIME_", extra="ignore", frozen=True)

    port: int = 8004

    # How a node listens to ticks: one NATS subscription per ticker somebody here wants
    # (the server filters), or one wildcard subscription routed locally. Measured in
    # bench/realtime (docs/performance.md); per_ticker is the default.
    tick_routing: Literal["per_ticker", "wildcard"] = "per_ticker"

    # Per-role limits: subscriptions per price socket, open sockets per user (both streams).
    viewer_max_subscriptions: int = Field(default=50, ge=1)
    analyst_max_subscriptions: int = Field(default=200, ge=1)
    admin_max_subscriptions: int = Field(default=1000, ge=1)
    viewer_max_connections: int = Field(default=5, ge=1)
    analyst_max_connections: int = Field(default=10, ge=1)
    admin_max_connections: int = Field(default=50, ge=1)

    # Seconds without any frame after which the server sends a heartbeat.
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    # A socket whose oldest unsent quote is older than this is disconnected (4008).
    max_lag_seconds: float = Field(default=5.0, gt=0)
    # How long to wait for market's latest quotes on subscribe.
    snapshot_timeout_seconds: float = Field(default=1.0, gt=0)
    # Kernel send buffer of each client socket (bytes; Linux doubles it; 0: autotuned, up
    # to tcp_wmem's max, often 4 MB). Bounded, it caps per-socket kernel memory and lets
    # a stalled reader show up as back-pressure within a second instead of megabytes later.
    socket_send_buffer: int = Field(default=65536, ge=0)
    # 0: the node's flusher writes every due socket's frame at the end of the event-loop
    # turn; more: this long after the first message buffered since the last flush, so more
    # quotes share a frame (latency for fewer frames).
    coalesce_ms: float = Field(default=0.0, ge=0, le=100)
    # Full reload of the alert rules, besides the change notifications between nodes.
    rules_reload_seconds: float = Field(default=60.0, gt=0)
    # The JetStream stream recommendations publishes ``recommendations.run.completed`` on
    # (declared by recommendations).
    recommendation_stream: str = "RECOMMENDATIONS"
    # The stream portfolio publishes ``portfolio.holding.flagged`` and
    # ``portfolio.watchlist.changed`` on (declared by portfolio); the latter feeds realtime's
    # copy of watchlist membership, for watchlist rules.
    portfolio_stream: str = "PORTFOLIO"
    # Alert history replayed on reconnect, at most.
    max_replay: int = Field(default=500, ge=1)
