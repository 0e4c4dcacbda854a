"""The portfolio benchmark: the figures of issue 12 next to a ceiling measured in the
same run, at the service (the app in process, called through httpx's ASGI transport: no
sockets, no gateway), on the real PostgreSQL, Redis and NATS.

    .venv/bin/python bench/portfolio/run.py [--positions 200] [--seconds 10] [--json out.json]
        [--only read-write] [--profile] [--loop uvloop|asyncio]

- ``GET /portfolio`` with N positions (a ledger of ~4 entries per position), valued at
  quotes served over NATS by this script (market's side of ``market.rpc.quotes``);
- a rebalance proposal for N positions with explicit targets, and with the optimiser
  (minimum variance and risk parity on a year of daily returns), each with the x-ray before
  and after (so daily history, the index and the latest recommendations are served too,
  by this script, over NATS: market's ``market.rpc.history`` a page of 50 tickers at a time);
- ``POST /portfolio/positions`` with idempotency keys, sustained: many users at once
  (each their own portfolio) and one portfolio (its writes serialise on its row);
- the ceiling: ``GET /live`` of the same app, the floor of the framework and transport.

Needs the servers the tests use (``BOURSE_TEST_*_URL`` or the local ones). Creates and
drops ``bourse_bench_portfolio_<id>``. Machines are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from bourse.parts import BY_NAME  # noqa: E402
from shared.db import drop_database, ensure_database, ensure_service_schema, with_database  # noqa: E402
from shared.messaging import Delivered  # noqa: E402
from shared.runtime import GC_THRESHOLDS  # noqa: E402
from tests.infra import TestInfra  # noqa: E402
from tests.inprocess import InProcessApp, running_app  # noqa: E402

ADMIN = os.environ.get("BOURSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BOURSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS = os.environ.get("BOURSE_TEST_NATS_URL", "nats://127.0.0.1:4222")
RESULTS: list[dict[str, Any]] = []


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def report(figure: str, value: float, unit: str, goal: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    out(f"  {figure:<62} {value:>10.2f} {unit:<6} {goal}{mark}")
    RESULTS.append({"figure": figure, "value": value, "unit": unit, "goal": goal, "ok": ok})


class QuotesRequest(BaseModel):
    tickers: list[str]


class QuotesReply(BaseModel):
    quotes: list[dict[str, Any]]
    missing: list[str]


class HistoryRequest(BaseModel):
    tickers: list[str]
    start: date
    end: date
    adjusted: bool = True
    cursor: int | None = None


class IndexRequest(BaseModel):
    start: date
    end: date


class LatestRequest(BaseModel):
    tickers: list[str] | None = None
    cursor: str | None = None
    limit: int = 200


class Reply(BaseModel):
    model_config = {"extra": "allow"}


HISTORY_PAGE = 50  # tickers a page: a year of 50 series is ~half of NATS's 1 MB


def history_of(symbols: list[str], prices: dict[str, float]) -> dict[str, list[float]]:
    """A year of made-up daily closes per ticker (a factor plus noise), ending at its price."""
    rng = np.random.default_rng(12)
    factor = rng.normal(0, 0.008, DAYS)
    out = {}
    for i, t in enumerate(symbols):
        returns = factor * (0.5 + (i % 7) / 7) + rng.normal(0, 0.01 + (i % 5) * 0.003, DAYS)
        levels = np.cumprod(1 + returns)
        out[t] = [round(float(v), 4) for v in prices[t] * levels / levels[-1]]
    return out


DAYS = 365


def tickers(n: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"Q{letters[i // 26 % 26]}{letters[i % 26]}" for i in range(n)]


async def latencies(call: Callable[[], Awaitable[httpx.Response]], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        response = await call()
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code < 300, response.text
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sustained(
    app: InProcessApp, seconds: float, workers: int, make: Callable[[int, int], Awaitable[int]]
) -> float:
    """Requests per second over ``seconds``, from ``workers`` loops calling ``make``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            status = await make(w, i)
            assert status == 201, status
            done += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex[:8]
    database = f"bourse_bench_portfolio_{run}"
    await ensure_database(ADMIN, database)
    part = BY_NAME["portfolio"]
    await ensure_service_schema(ADMIN, database=database, role=part.db_role, schema=part.schema)
    infra = TestInfra(
        run_id=run,
        admin_url=with_database(ADMIN, database),
        admin_server_url=ADMIN,
        database=database,
        redis_url=REDIS,
        redis_prefix=f"bench:{run}:",
        nats_url=NATS,
        nats_prefix=f"b{run}",
    )
    symbols = tickers(args.positions)
    prices = {t: 20.0 + (i % 50) * 3.5 for i, t in enumerate(symbols)}
    out(
        f"portfolio benchmark: {args.positions} positions, {platform.node()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"{args.loop} loop, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    try:
        with tempfile.TemporaryDirectory() as work:
            async with running_app("portfolio", infra, Path(work), db_pool_max=20) as app:

                async def quotes(request: QuotesRequest, _: Delivered) -> BaseModel:
                    return QuotesReply(
                        quotes=[
                            {
                                "ticker": t,
                                "price": prices[t],
                                "ts": 1_764_000_000_000,
                                "previous_close": prices[t],
                                "change": 0.0,
                                "change_percent": 0.0,
                                "volume": 1,
                            }
                            for t in request.tickers
                            if t in prices
                        ],
                        missing=[t for t in request.tickers if t not in prices],
                    )

                today = date.today()
                days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
                closes = history_of(symbols, prices)

                async def history(request: HistoryRequest, _: Delivered) -> BaseModel:
                    at = request.cursor or 0
                    page = request.tickers[at : at + HISTORY_PAGE]
                    keep = [i for i, d in enumerate(days) if request.start <= d <= request.end]
                    return Reply(
                        series=[
                            {
                                "ticker": t,
                                "dates": [days[i] for i in keep],
                                "closes": [closes[t][i] for i in keep],
                            }
                            for t in page
                            if t in closes
                        ],
                        missing=[t for t in page if t not in closes],
                        next_cursor=at + HISTORY_PAGE
                        if at + HISTORY_PAGE < len(request.tickers)
                        else None,
                    )

                index_levels = [1000.0 * (1 + 0.0002 * i) for i in range(DAYS)]

                async def index(request: IndexRequest, _: Delivered) -> BaseModel:
                    keep = [i for i, d in enumerate(days) if request.start <= d <= request.end]
                    return Reply(
                        dates=[days[i] for i in keep],
                        price_return=[index_levels[i] for i in keep],
                        total_return=[index_levels[i] for i in keep],
                    )

                run_id = str(uuid.uuid4())

                async def latest(request: LatestRequest, _: Delivered) -> BaseModel:
                    wanted = request.tickers or symbols
                    return Reply(
                        run_id=run_id,
                        as_of=str(today),
                        calls=[
                            {
                                "id": str(uuid.uuid5(uuid.NAMESPACE_OID, t)),
                                "ticker": t,
                                "action": ("BUY", "HOLD", "SELL")[i % 3],
                                "confidence": 0.6,
                                "hypothetical": False,
                            }
                            for i, t in enumerate(wanted)
                        ],
                        missing=[],
                        next_cursor=None,
                    )

                bus = app.app.state.resources.bus
                responders = [
                    await bus.serve("market.rpc.quotes", QuotesRequest, quotes),
                    await bus.serve("market.rpc.history", HistoryRequest, history),
                    await bus.serve("market.rpc.index", IndexRequest, index),
                    await bus.serve("recommendations.rpc.latest", LatestRequest, latest),
                ]
                try:
                    await measure(app, args, symbols, prices)
                finally:
                    for responder in responders:
                        await responder.unsubscribe()
    finally:
        await drop_database(ADMIN, database)
    out(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(RESULTS, indent=2))


async def measure(
    app: InProcessApp, args: argparse.Namespace, symbols: list[str], prices: dict[str, float]
) -> None:
    client = app.client
    owner = app.token()
    star = {**owner, "If-Match": "*"}
    url = "/api/v1/portfolio/transactions"
    started = time.perf_counter()
    assert (
        await client.post(url, json={"kind": "DEPOSIT", "amount": "100000000"}, headers=star)
    ).status_code == 201
    for round_ in range(3):
        for t in symbols:
            body = {
                "kind": "BUY",
                "ticker": t,
                "quantity": str(10 + round_),
                "price": f"{prices[t] * (0.9 + 0.05 * round_):.2f}",
            }
            assert (await client.post(url, json=body, headers=star)).status_code == 201
    for t in symbols[::2]:
        body = {"kind": "SELL", "ticker": t, "quantity": "5", "price": f"{prices[t]:.2f}"}
        assert (await client.post(url, json=body, headers=star)).status_code == 201
    for t in symbols[::4]:
        body = {"kind": "DIVIDEND", "ticker": t, "amount": "12.34"}
        assert (await client.post(url, json=body, headers=star)).status_code == 201
    entries = 1 + 3 * len(symbols) + len(symbols[::2]) + len(symbols[::4])
    out(f"  seeded {entries} ledger entries in {time.perf_counter() - started:.1f} s")

    out("latency at the service (sequential, ms)")
    live = await latencies(lambda: client.get("/live"), 300)
    report("ceiling: GET /live p50", statistics.median(live), "ms")
    if args.profile:
        from pyinstrument import Profiler

        with Profiler(async_mode="enabled") as profiler:
            await latencies(lambda: client.get("/api/v1/portfolio", headers=owner), 50)
        out(profiler.output_text(unicode=False, color=False, show_all=False))
    got = await latencies(lambda: client.get("/api/v1/portfolio", headers=owner), args.requests)
    body = (await client.get("/api/v1/portfolio", headers=owner)).json()
    assert len(body["positions"]) == len(symbols) and not body["unpriced"]
    report(
        f"GET /portfolio, {len(symbols)} positions p50",
        statistics.median(got),
        "ms",
        "<= 20 ms",
        statistics.median(got) <= 20,
    )
    report(f"GET /portfolio, {len(symbols)} positions p95", percentile(got, 0.95), "ms")
    if args.only != "read-write":
        await proposals_and_risk(app, owner, symbols, args)
    await writes(app, args, symbols, owner, entries)


async def proposals_and_risk(
    app: InProcessApp, owner: dict[str, str], symbols: list[str], args: argparse.Namespace
) -> None:
    client = app.client
    weights = dict.fromkeys(symbols, "0.004")
    proposal = {
        "target": {"kind": "explicit", "weights": weights},
        "constraints": {"drift_band": "0.0005"},
    }
    reb = await latencies(
        lambda: client.put("/api/v1/portfolio/rebalance", json=proposal, headers=owner),
        max(10, args.requests // 5),
    )
    answer = (await client.put("/api/v1/portfolio/rebalance", json=proposal, headers=owner)).json()
    report(
        f"rebalance proposal, {len(symbols)} positions p50 ({len(answer['trades'])} trades)",
        statistics.median(reb),
        "ms",
        "<= 200 ms",
        statistics.median(reb) <= 200,
    )
    assert answer["xray_before"]["risk"]["available"] and answer["xray_after"]["sell_signals"]
    for method in ("min_variance", "risk_parity"):
        optimised = {
            "target": {"kind": "optimised", "method": method},
            "constraints": {"drift_band": "0.0005", "fractional": True},
        }
        took = await latencies(
            lambda body=optimised: client.put(  # type: ignore[misc]
                "/api/v1/portfolio/rebalance", json=body, headers=owner
            ),
            max(5, args.requests // 20),
        )
        report(
            f"rebalance proposal, {len(symbols)} positions, optimiser {method} p50",
            statistics.median(took),
            "ms",
            "<= 2000 ms",
            statistics.median(took) <= 2000,
        )
    xr = await latencies(lambda: client.get("/api/v1/portfolio/xray", headers=owner), 20)
    report(f"x-ray, {len(symbols)} positions p50", statistics.median(xr), "ms")
    perf = await latencies(lambda: client.get("/api/v1/portfolio/performance", headers=owner), 5)
    report("performance (a year of closes served) p50", statistics.median(perf), "ms")


async def write_ceiling(app: InProcessApp, seconds: float, workers: int) -> float:
    """Transactions per second of one INSERT and a commit each, ``workers`` at once, on
    the app's own pool and event loop: what PostgreSQL and asyncpg allow a write here."""
    pool = app.app.state.resources.pool
    await pool.execute("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, k text)")
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO bench_ceiling (k) VALUES ($1)", f"w{w}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done / (time.perf_counter() - started)


async def writes(
    app: InProcessApp,
    args: argparse.Namespace,
    symbols: list[str],
    owner: dict[str, str],
    entries: int,
) -> None:
    client = app.client
    url = "/api/v1/portfolio/transactions"
    out(f"POST /portfolio/positions with Idempotency-Key, sustained {args.seconds:.0f} s")
    ceiling = await write_ceiling(app, args.seconds / 2, args.workers)
    report(f"ceiling: one INSERT + commit, {args.workers} at once (asyncpg)", ceiling, "req/s")
    users = [app.token() for _ in range(args.workers)]
    for user in users:
        assert (
            await client.post(
                url,
                json={"kind": "DEPOSIT", "amount": "100000000"},
                headers={**user, "If-Match": "*"},
            )
        ).status_code == 201

    async def buy_as(worker: int, i: int) -> int:
        headers = {**users[worker], "If-Match": "*", "Idempotency-Key": f"w{worker}-{i}"}
        body = {"ticker": symbols[i % len(symbols)], "quantity": "1", "price": "10"}
        return (
            await client.post("/api/v1/portfolio/positions", json=body, headers=headers)
        ).status_code

    if args.profile:
        from pyinstrument import Profiler

        with Profiler(async_mode="disabled") as profiler:
            await sustained(app, 3, args.workers, buy_as)
        out(profiler.output_text(unicode=False, color=False, show_all=False))
    cpu, wall = time.process_time(), time.perf_counter()
    rate = await sustained(app, args.seconds, args.workers, buy_as)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    report(f"{args.workers} users at once, own portfolios", rate, "req/s", ">= 500/s", rate >= 500)
    # What the machine's load hides: the process's own CPU per write (its share of a core
    # says how starved it was); 1000 / that is the rate one unstarved core would give.
    report("  CPU per write in this process (all its threads)", cpu * 1000 / (rate * wall), "ms")
    report("  this process's share of a core during the writes", cpu / wall, "cores")

    async def buy_one(worker: int, i: int) -> int:
        headers = {**owner, "If-Match": "*", "Idempotency-Key": f"one-{worker}-{i}"}
        body = {"ticker": symbols[i % len(symbols)], "quantity": "1", "price": "10"}
        return (
            await client.post("/api/v1/portfolio/positions", json=body, headers=headers)
        ).status_code

    rate_one = await sustained(app, args.seconds / 2, args.workers, buy_one)
    report(f"{args.workers} writers, one portfolio of {entries}+ entries", rate_one, "req/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--json")
    parser.add_argument(
        "--profile", action="store_true", help="profile GET /portfolio and the writes"
    )
    parser.add_argument(
        "--only",
        choices=("all", "read-write"),
        default="all",
        help="read-write: GET /portfolio and POST /portfolio/positions only",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the event loop (the service runs on uvloop: shared/runtime.py)",
    )
    arguments = parser.parse_args()
    gc.set_threshold(*GC_THRESHOLDS)  # as the service's runner sets them
    if arguments.loop == "uvloop":
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
