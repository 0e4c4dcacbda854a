"""The two WebSocket endpoints: ``/api/v1/ws/prices`` and ``/api/v1/ws/alerts``.

Thin: authenticate the upgrade, take a connection lease, then read client actions and
hand them to the hub / the alert fan-out. Writing is the socket's ``Outbound``'s job.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import APIRouter
from starlette.websockets import WebSocket

from services.realtime import service
from services.realtime.alerting import fired_message
from services.realtime.events import AlertFired
from services.realtime.state import Realtime
from services.realtime.streams import protocol
from services.realtime.streams.handshake import authenticate, refuse
from services.realtime.streams.limits import Lease
from services.realtime.streams.session import Outbound
from shared.errors import AppError, ValidationFailedError
from shared.jwt import Claims

router = APIRouter(prefix="/api/v1")

PRICE_ACTIONS = frozenset({"subscribe", "unsubscribe", "ping"})
ALERT_ACTIONS = frozenset({"ping"})


def _realtime(websocket: WebSocket) -> Realtime:
    realtime: Realtime = websocket.app.state.realtime
    return realtime


async def _open(websocket: WebSocket, realtime: Realtime, claims: Claims) -> Lease | None:
    """Accept the socket; None (after telling the client, then 1008) over the user's limit."""
    limits = realtime.limits.for_claims(claims)
    lease = (
        await realtime.leases.take(claims.subject, limits.max_connections)
        if limits is not None
        else None
    )
    await websocket.accept()
    if lease is None:
        limit = limits.max_connections if limits is not None else 0
        await websocket.send_text(
            protocol.frame(
                [
                    protocol.error(
                        "CONNECTION_LIMIT",
                        f"You may keep at most {limit} stream connections open.",
                        {"limit": limit},
                    )
                ]
            )
        )
        await websocket.close(protocol.CLOSE_POLICY, "connection limit")
    return lease


async def _finish(realtime: Realtime, out: Outbound, lease: Lease) -> None:
    if not out.closing:
        await out.stop()
    await realtime.leases.give_back(lease)


def _text(message: MutableMapping[str, Any]) -> str | bytes:
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


@router.websocket("/ws/prices")
async def prices(websocket: WebSocket) -> None:
    """Live quotes of the tickers a client subscribes to (protocol: docs/realtime.md)."""
    realtime = _realtime(websocket)
    claims = await authenticate(websocket)
    if claims is None:
        return
    lease = await _open(websocket, realtime, claims)
    if lease is None:
        return
    limits = realtime.limits.for_claims(claims)
    assert limits is not None
    hub, stats = realtime.hub, realtime.hub.stats
    out = Outbound(websocket, stats, hub.flusher, max_lag=realtime.settings.max_lag_seconds)
    subscribed: dict[str, None] = {}
    stats.price_connections += 1
    hub.attach(out)
    out.send_control(
        protocol.message(
            "connected",
            stream="prices",
            limits={"subscriptions": limits.max_subscriptions},
            heartbeat_seconds=realtime.settings.heartbeat_seconds,
        )
    )
    realtime.feed.join(out)  # a status message now if the feed is interrupted, and on change
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                action = protocol.parse_action(_text(message), allowed=PRICE_ACTIONS)
            except protocol.ProtocolError as exc:
                out.send_control(protocol.error(exc.code, exc.message, exc.details))
                continue
            if action.kind == "ping":
                out.send_control(protocol.message("pong", id=action.ping_id, ts=protocol.now_ms()))
            elif action.kind == "subscribe":
                new = [t for t in action.tickers if t not in subscribed]
                room = max(limits.max_subscriptions - len(subscribed), 0)
                accepted, rejected = new[:room], new[room:]
                subscribed.update(dict.fromkeys(accepted))
                out.send_control(
                    protocol.message("subscribed", tickers=accepted, subscriptions=list(subscribed))
                )
                if rejected:
                    out.send_control(
                        protocol.error(
                            "SUBSCRIPTION_LIMIT",
                            f"At most {limits.max_subscriptions} subscriptions per connection.",
                            {"limit": limits.max_subscriptions, "rejected": rejected},
                        )
                    )
                if accepted:
                    try:
                        await hub.subscribe(out, accepted)
                    except AppError as exc:
                        out.send_control(protocol.error(exc.error_code, exc.message))
            else:
                gone = [t for t in action.tickers if t in subscribed]
                for ticker in gone:
                    del subscribed[ticker]
                await hub.unsubscribe(out, gone)
                out.send_control(
                    protocol.message("unsubscribed", tickers=gone, subscriptions=list(subscribed))
                )
    finally:
        stats.price_connections -= 1
        realtime.feed.leave(out)
        await hub.detach(out, list(subscribed))
        await _finish(realtime, out, lease)


def _encode_alert(alert: AlertFired) -> bytes:
    return protocol.message("alert", **alert.model_dump(mode="json", exclude={"owner_id"}))


@router.websocket("/ws/alerts")
async def alerts(websocket: WebSocket) -> None:
    """The caller's alerts, live; with ``?last_alert_id=N``, first those after N."""
    realtime = _realtime(websocket)
    claims = await authenticate(websocket)
    if claims is None:
        return
    raw_last = websocket.query_params.get("last_alert_id")
    last_id: int | None = None
    if raw_last is not None:
        if not raw_last.isdigit() or len(raw_last) > 18:
            await refuse(
                websocket,
                ValidationFailedError(
                    "last_alert_id must be a non-negative integer.",
                    details={"field": "last_alert_id"},
                ),
            )
            return
        last_id = int(raw_last)
    lease = await _open(websocket, realtime, claims)
    if lease is None:
        return
    owner = claims.subject
    stats = realtime.hub.stats
    out = Outbound(
        websocket,
        stats,
        realtime.hub.flusher,
        max_lag=realtime.settings.max_lag_seconds,
        max_control=1000,
    )
    replaying = True
    held: list[AlertFired] = []
    last_sent = last_id or 0

    def push(alert: AlertFired) -> None:
        nonlocal last_sent
        if alert.id <= last_sent:
            return  # already sent (replayed, or delivered twice)
        last_sent = alert.id
        stats.alerts_delivered += 1
        out.send_control(_encode_alert(alert))

    def sink(alert: AlertFired) -> None:
        if replaying:
            held.append(alert)
        else:
            push(alert)

    stats.alert_connections += 1
    realtime.hub.attach(out)
    realtime.fanout.add(owner, sink)  # before reading history: nothing falls in between
    try:
        out.send_control(
            protocol.message(
                "connected",
                stream="alerts",
                heartbeat_seconds=realtime.settings.heartbeat_seconds,
            )
        )
        if last_id is not None:
            missed = await service.alerts_missed(
                realtime.pool, owner, last_id, realtime.settings.max_replay + 1
            )
            truncated = len(missed) > realtime.settings.max_replay
            if truncated:
                missed = await service.latest_alerts(
                    realtime.pool, owner, realtime.settings.max_replay
                )
            out.send_control(
                protocol.message("resumed", after=last_id, count=len(missed), truncated=truncated)
            )
            for stored in missed:
                push(fired_message(stored))
        replaying = False
        for alert in sorted(held, key=lambda a: a.id):
            push(alert)
        held.clear()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                action = protocol.parse_action(_text(message), allowed=ALERT_ACTIONS)
            except protocol.ProtocolError as exc:
                out.send_control(protocol.error(exc.code, exc.message, exc.details))
                continue
            out.send_control(protocol.message("pong", id=action.ping_id, ts=protocol.now_ms()))
    finally:
        stats.alert_connections -= 1
        realtime.fanout.remove(owner, sink)
        await realtime.hub.detach(out)
        await _finish(realtime, out, lease)
