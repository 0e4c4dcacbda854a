"""What the realtime service holds while it runs (``app.state.realtime``)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.realtime.alerting import AlertFanout, RecommendationAlerts, RuleEvaluator
from services.realtime.config import RealtimeSettings
from services.realtime.streams.feed_status import FeedWatch
from services.realtime.streams.hub import TickHub
from services.realtime.streams.limits import ConnectionLeases, Limits
from services.realtime.watchlists import WatchlistMembership


@dataclass
class Realtime:
    settings: RealtimeSettings
    pool: asyncpg.Pool
    hub: TickHub
    feed: FeedWatch
    leases: ConnectionLeases
    limits: Limits
    evaluator: RuleEvaluator
    fanout: AlertFanout
    recommendations: RecommendationAlerts
    watchlists: WatchlistMembership
