"""Dependencies stopped and restarted under load, on servers the test starts for itself.

The five parts run as processes against a private PostgreSQL, Redis and NATS
(:mod:`tests.private_infra`, never the machine's shared servers). A request loop goes
through the gateway -- reads of every service, logins, and writes (alert rules,
portfolios) -- while Redis, NATS and PostgreSQL are stopped and started again in turn.

What must hold:
- during a fault, every answer is a success or a ``503`` in the envelope with
  ``Retry-After`` (never a 500, 502 or 504);
- outside the faults, every answer is a success;
- within 5 s of a server being back, every route answers as before;
- no lost writes: every rule and portfolio answered ``201`` is there at the end;
- an open price socket is told when the feed stops (NATS, or the market's feed losing
  PostgreSQL) and when it is live again, and quotes flow again after that.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from bourse.infra import NATS, POSTGRES, REDIS
from services.realtime.tests.support import StreamClient, stream
from shared.jwt import SigningKey
from tests.platform import Platform, start_platform
from tests.private_infra import DATABASE, PrivateInfra, private_infra, provision

pytestmark = pytest.mark.e2e

RECOVERY_SECONDS = 5.0
DOWN_SECONDS = 2.0
OK = frozenset({200, 201, 204})

READS = [
    "/api/v1/stocks?limit=5",
    "/api/v1/stocks/{ticker}",
    "/api/v1/market/overview",
    "/api/v1/recommendations?limit=5",
    "/api/v1/portfolio",  # valued at live quotes: market over NATS
    "/api/v1/portfolios?limit=5",
    "/api/v1/alerts",
    "/api/v1/users/me",
]


@dataclass(frozen=True)
class Outcome:
    op: str
    started: float
    ended: float
    status: int
    error_code: str | None
    retry_after: str | None
    dependency: str | None


@dataclass(frozen=True)
class Heard:
    at: float
    message: dict[str, object]


async def _listen(socket: StreamClient, heard: list[Heard]) -> None:
    while True:
        message = await socket.next(timeout=3600)
        heard.append(Heard(time.monotonic(), message))


async def _until_heard(
    heard: list[Heard], since: float, wanted: dict[str, object], timeout: float
) -> Heard | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in heard:
            if item.at >= since and all(item.message.get(k) == v for k, v in wanted.items()):
                return item
        await asyncio.sleep(0.1)
    return None


@dataclass
class Fault:
    dependency: str
    stopped_at: float = 0.0
    restarted_at: float = 0.0


class Load:
    """The request loop and what it saw."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        key: dict[str, str],
        ticker: str,
    ) -> None:
        self.client = client
        self.headers = headers
        self.key = key
        self.ticker = ticker
        self.outcomes: list[Outcome] = []
        self.rules: list[str] = []
        self.portfolios: list[str] = []
        self.running = True
        self._serial = itertools.count()

    async def call(
        self, op: str, method: str, path: str, **kwargs: object
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await self.client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:  # no answer at all: recorded as such, never hidden
            self.outcomes.append(
                Outcome(op, started, time.monotonic(), 0, type(exc).__name__, None, None)
            )
            return None
        body: dict[str, object] = {}
        if response.status_code >= 400:
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = {}
        details = body.get("details")
        self.outcomes.append(
            Outcome(
                op,
                started,
                time.monotonic(),
                response.status_code,
                body.get("error_code") if isinstance(body.get("error_code"), str) else None,  # type: ignore[arg-type]
                response.headers.get("retry-after"),
                details.get("dependency") if isinstance(details, dict) else None,
            )
        )
        return response

    async def reads(self) -> None:
        while self.running:
            for template in READS:
                path = template.format(ticker=self.ticker)
                await self.call(f"GET {template}", "GET", path, headers=self.headers)
            # An API key is looked up by the edge itself, before any route runs.
            await self.call(
                "GET /api/v1/stocks (API key)", "GET", "/api/v1/stocks?limit=1", headers=self.key
            )

    async def writes(self) -> None:
        while self.running:
            n = next(self._serial)
            rule = await self.call(
                "POST /api/v1/alerts",
                "POST",
                "/api/v1/alerts",
                headers=self.headers,
                json={
                    "ticker": self.ticker,
                    "condition": "price_above",
                    "threshold": str(1000 + n),
                },
            )
            if rule is not None and rule.status_code == 201:
                self.rules.append(rule.json()["id"])
            portfolio = await self.call(
                "POST /api/v1/portfolio",
                "POST",
                "/api/v1/portfolio",
                headers=self.headers,
                json={"name": f"fault-{n}"},
            )
            if portfolio is not None and portfolio.status_code == 201:
                self.portfolios.append(portfolio.json()["id"])
            await asyncio.sleep(0.25)

    async def logins(self) -> None:
        while self.running:
            await self.call(
                "POST /api/v1/auth/token",
                "POST",
                "/api/v1/auth/token",
                data={"username": "demo-viewer", "password": "viewer-demo-pass"},
            )
            await asyncio.sleep(0.3)


async def _until_all_ok(load: Load, since: float, timeout: float) -> None:
    """Wait until every kind of request has succeeded at least once after ``since`` and
    nothing has failed for half a second (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    kinds = {o.op for o in load.outcomes}
    while time.monotonic() < deadline:
        after = [o for o in load.outcomes if o.started >= since]
        succeeded = {o.op for o in after if o.status in OK}
        failures = [o for o in after if o.status not in OK]
        quiet = not failures or time.monotonic() - failures[-1].ended > 0.5
        if succeeded >= kinds and quiet:
            return
        await asyncio.sleep(0.1)


async def _scenario(platform: Platform, servers: PrivateInfra) -> tuple[Load, list[Fault]]:
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=15.0) as client:
        token = await client.post(
            "/api/v1/auth/token", data={"username": "demo-viewer", "password": "viewer-demo-pass"}
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        stocks = await client.get("/api/v1/stocks?limit=1", headers=headers)
        assert stocks.status_code == 200, stocks.text
        created = await client.post(
            "/api/v1/api-keys", headers=headers, json={"name": "faults", "scopes": ["read"]}
        )
        assert created.status_code == 201, created.text
        key = {"X-API-Key": created.json()["key"]}
        load = Load(client, headers, key, stocks.json()["items"][0]["ticker"])
        heard: list[Heard] = []
        socket_context = stream(platform.gateway_url, "/api/v1/ws/prices", headers=headers)
        socket = await socket_context.__aenter__()
        await socket.send(action="subscribe", tickers=[load.ticker])
        listener = asyncio.create_task(_listen(socket, heard))
        assert await _until_heard(heard, 0, {"type": "quote"}, 10), heard[-5:]
        tasks = [
            asyncio.create_task(load.reads()),
            asyncio.create_task(load.reads()),
            asyncio.create_task(load.writes()),
            asyncio.create_task(load.logins()),
        ]
        faults = []
        try:
            await asyncio.sleep(1.5)
            for dependency in (REDIS, NATS, POSTGRES):
                fault = Fault(dependency, stopped_at=time.monotonic())
                await asyncio.to_thread(servers.stop, dependency)
                await asyncio.sleep(DOWN_SECONDS)
                await asyncio.to_thread(servers.start, dependency)
                fault.restarted_at = time.monotonic()
                faults.append(fault)
                await _until_all_ok(load, fault.restarted_at, RECOVERY_SECONDS + 2)
                if dependency != REDIS:  # ticks need NATS, and the feed its database
                    # The market's feed retries 5 s after losing its database, then says
                    # it runs within its 2 s status interval.
                    live = await _until_heard(
                        heard, fault.stopped_at, {"type": "status", "feed": "live"}, 10
                    )
                    assert live is not None, [h.message for h in heard[-10:]]
        finally:
            load.running = False
            await asyncio.gather(*tasks)
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await socket_context.__aexit__(None, None, None)
        _check_feed_status(heard, faults)
        # No lost writes: everything answered 201 is there.
        rules = await client.get("/api/v1/alerts", headers=headers)
        assert rules.status_code == 200, rules.text
        stored_rules = {item["id"] for item in rules.json()["items"]}
        stored_portfolios = await _all_portfolios(client, headers)
        assert load.rules, "no alert rule was created during the run"
        assert set(load.rules) <= stored_rules, set(load.rules) - stored_rules
        assert set(load.portfolios) <= stored_portfolios, set(load.portfolios) - stored_portfolios
        return load, faults


async def _all_portfolios(client: httpx.AsyncClient, headers: dict[str, str]) -> set[str]:
    ids: set[str] = set()
    params: dict[str, str] = {"limit": "100"}
    while True:
        page = await client.get("/api/v1/portfolios", headers=headers, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        ids.update(item["id"] for item in body["items"])
        if not body["next_cursor"]:
            return ids
        params["cursor"] = body["next_cursor"]


def _check_feed_status(heard: list[Heard], faults: list[Fault]) -> None:
    """Per fault: the socket heard the feed stop (for the right reason) after the server
    went down, then heard it live again, then got quotes again."""
    reasons = {NATS: "nats", POSTGRES: "market_feed_stopped"}
    statuses = [h for h in heard if h.message["type"] == "status"]
    for fault, following in zip(faults, [*faults[1:], None], strict=True):
        until = following.stopped_at if following is not None else float("inf")
        window = [h for h in statuses if fault.stopped_at <= h.at < until]
        if fault.dependency == REDIS:
            assert not window, [h.message for h in window]  # ticks need no Redis
            continue
        down = next((h for h in window if h.message["feed"] == "interrupted"), None)
        assert down is not None, (fault.dependency, [h.message for h in statuses])
        assert down.message["reason"] == reasons[fault.dependency], down.message
        up = next((h for h in window if h.at > down.at and h.message["feed"] == "live"), None)
        assert up is not None, (fault.dependency, [h.message for h in statuses])
        assert any(h.message["type"] == "quote" and h.at > up.at for h in heard), fault


def _window(outcome: Outcome, faults: list[Fault]) -> Fault | None:
    """The fault an outcome belongs to: the last one stopped before it ended, if the
    outcome started before that fault's recovery deadline."""
    started = [f for f in faults if f.stopped_at <= outcome.ended]
    if not started:
        return None
    fault = started[-1]
    return fault if outcome.started <= fault.restarted_at + RECOVERY_SECONDS else None


def _summary(load: Load, faults: list[Fault]) -> str:
    lines = []
    for fault in faults:
        mine = [o for o in load.outcomes if _window(o, faults) is fault]
        seen = Counter((o.status, o.error_code, o.dependency) for o in mine)
        late = [o.ended - fault.restarted_at for o in mine if o.status not in OK]
        lines.append(
            f"{fault.dependency}: {dict(seen)}; last failure "
            f"{max(late, default=0.0):+.2f}s from the restart"
        )
    return "\n".join(lines)


def _log_lines(log_dir: Path) -> list[tuple[str, dict[str, object]]]:
    lines = []
    for log in sorted(log_dir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                lines.append((log.stem, record))
    return lines


def test_requests_during_dependency_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A small universe (seeded before the market starts, so it loads nothing itself) and
    # quotas the loop cannot reach: this test is about dependencies, not limits.
    monkeypatch.setenv("MARKET_DEMO_UNIVERSE_SIZE", "13")
    monkeypatch.setenv("MARKET_DEMO_UNIVERSE_YEARS", "2")
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_READ", "100000/60s")
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_WRITE", "100000/60s")
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_PUBLIC", "100000/60s")
    monkeypatch.setenv("MARKET_FEED_RATE", "20")
    monkeypatch.setenv("GATEWAY_API_KEY_CACHE_SECONDS", "0")  # every request looks its key up
    key_file = tmp_path / "jwt-signing.pem"
    key_file.write_bytes(SigningKey.generate().to_pem())
    key_file.chmod(0o600)
    with private_infra() as servers:
        asyncio.run(provision(servers))
        platform = start_platform(
            servers,
            database=DATABASE,
            redis_prefix="",
            nats_prefix="",
            signing_key=key_file,
            log_dir=tmp_path,
        )
        try:
            load, faults = asyncio.run(_scenario(platform, servers))
        finally:
            platform.stop()
    summary = _summary(load, faults)
    logging.getLogger(__name__).info("dependency faults:\n%s", summary)

    wrong = []
    for outcome in load.outcomes:
        fault = _window(outcome, faults)
        if outcome.status in OK:
            continue
        if fault is None:
            wrong.append(("outside a fault", outcome))
        elif outcome.status != 503 or outcome.error_code is None:
            wrong.append((f"during {fault.dependency}", outcome))
        elif not outcome.retry_after or not outcome.dependency:
            wrong.append((f"503 without Retry-After or dependency, {fault.dependency}", outcome))
    assert not wrong, "\n".join(f"{why}: {o}" for why, o in wrong[:30]) + "\n" + summary

    # Recovery: nothing fails later than RECOVERY_SECONDS after the server is back.
    for fault, following in zip(faults, [*faults[1:], None], strict=True):
        until = following.stopped_at if following is not None else float("inf")
        late = [
            o
            for o in load.outcomes
            if o.status not in OK and fault.restarted_at + RECOVERY_SECONDS < o.ended < until
        ]
        assert not late, f"{fault.dependency}: still failing after {RECOVERY_SECONDS}s: {late[:5]}"
    # The database fault was felt: the loop did run through it.
    assert any(o.status == 503 and _window(o, faults) is faults[-1] for o in load.outcomes), summary

    # The logs: no traceback for a lost dependency, and one WARNING per outage and part
    # (not one per refused request).
    records = _log_lines(tmp_path)
    errors = [(part, r["logger"], r["msg"]) for part, r in records if r.get("level") == "ERROR"]
    assert not errors, errors[:10]
    per_request = [
        r["msg"] for _, r in records if str(r.get("msg", "")).startswith("request failed")
    ]
    assert not per_request, per_request[:5]
    outages = Counter(
        (part, r.get("dependency"))
        for part, r in records
        if r.get("logger") == "shared.health" and r.get("level") == "WARNING"
    )
    assert outages, "no outage was logged"
    assert max(outages.values()) <= 2, outages
