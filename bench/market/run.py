"""The market benchmark: loads the full simulated universe into a database of its own and
prints every performance figure of issue 3 next to a ceiling measured in the same run.

    .venv/bin/python bench/market/run.py [--size 6000] [--years 10] [--json results.json]

Needs the PostgreSQL, Redis and NATS the tests use (``BOURSE_TEST_*_URL`` or the local
ones) and ``wrk`` for the HTTP throughput figures (``apt-get install wrk``). It creates and
drops ``bourse_bench_market_<id>``, and uses Redis keys / NATS subjects under its own prefix.
Machines are noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402

from services.market.domain import calendar  # noqa: E402
from services.market.domain import simulator as sim  # noqa: E402
from services.market.repository import actions as actions_repo  # noqa: E402
from services.market.repository import bars as bars_repo  # noqa: E402
from services.market.repository import loads, quotes, securities  # noqa: E402
from services.market.routes import _encode_json  # noqa: E402
from services.market.service import loading, stocks  # noqa: E402
from services.market.service import market as market_service  # noqa: E402
from shared.cache import CachedBody, ResponseCache  # noqa: E402
from shared.db import (  # noqa: E402
    create_pool,
    drop_database,
    ensure_database,
    ensure_service_schema,
    migrate,
    open_connection,
    service_dsn,
)
from shared.jwt import SigningKey, TokenSigner  # noqa: E402
from shared.messaging import connect_bus  # noqa: E402
from shared.redis import connect_redis  # noqa: E402

ADMIN = os.environ.get("BOURSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BOURSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS = os.environ.get("BOURSE_TEST_NATS_URL", "nats://127.0.0.1:4222")

RESULTS: list[dict[str, Any]] = []


def report(
    figure: str,
    value: float,
    unit: str,
    *,
    ceiling: float | None = None,
    ceiling_name: str = "",
    goal: str = "",
    ok: bool | None = None,
) -> None:
    ratio = value / ceiling if ceiling else None
    RESULTS.append(
        {
            "figure": figure,
            "value": value,
            "unit": unit,
            "ceiling": ceiling,
            "ceiling_name": ceiling_name,
            "ratio": ratio,
            "goal": goal,
            "ok": ok,
        }
    )
    line = f"{figure:<52} {value:>12,.2f} {unit:<8}"
    if ceiling is not None:
        line += f" | ceiling {ceiling:>12,.2f} ({ceiling_name}) ratio {ratio:.2f}"
    if goal:
        line += f" | goal {goal}: {'PASS' if ok else 'MISS'}"
    out(line)


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    out(f"-- {message}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def p50_ms(fn: Callable[[], Awaitable[object]], runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


# --------------------------------------------------------------------------- loading


async def load_phase(dsn: str, size: int, years: int) -> tuple[list[str], dict[str, Any]]:
    conn = await open_connection(dsn)
    conn_info: dict[str, Any] = {}
    try:
        spec = loading.universe_spec(size, years, 20_240_101)
        started = time.perf_counter()
        universe = sim.build_universe(spec)
        ids = await securities.insert_securities(conn, loading.simulated_securities(universe))
        id_of = np.array([ids[s.ticker] for s in universe.securities], dtype=np.int32)
        factors = sim.factor_paths(spec)
        chunks: list[bars_repo.BarArrays] = []
        actions: list[tuple[int, Any, str, float, float | None, str]] = []
        shares_ids: list[int] = []
        shares: list[int] = []
        for k in range(0, size, 250):
            chunk = sim.simulate_bars(universe, factors, k, min(size, k + 250))
            chunks.append(
                bars_repo.BarArrays(
                    id_of[chunk.security],
                    spec.sessions[chunk.day],
                    chunk.open,
                    chunk.high,
                    chunk.low,
                    chunk.close,
                    chunk.volume,
                )
            )
            for i, t, kind, value, f in chunk.actions:
                actions.append(
                    (int(id_of[i]), calendar.to_date(spec.sessions[t]), kind, value, f, "simulated")
                )
            shares_ids.extend(int(x) for x in id_of[k : k + len(chunk.shares_outstanding)])
            shares.extend(int(x) for x in chunk.shares_outstanding)
        generated = time.perf_counter() - started
        rows = sum(len(c) for c in chunks)
        say(
            f"generated {size:,} securities x {spec.days:,} sessions = {rows:,} bars"
            f" in {generated:.1f}s"
        )
        report("simulator: generate the universe", rows / generated, "rows/s")
        conn_info["rows"] = rows
        conn_info["sessions"] = spec.days

        # Ceiling: the same rows, pre-encoded, COPY'd in binary into an unindexed plain table;
        # measured before and after our load (the machine's background load drifts).
        encoded = [bars_repo.encode_binary(c) for c in chunks]

        async def ceiling_run() -> float:
            await conn.execute(
                "CREATE TABLE ceiling_bars (security_id integer, day date,"
                " open double precision, high double precision, low double precision,"
                " close double precision, volume bigint)"
            )
            started = time.perf_counter()
            for data in encoded:
                await bars_repo.copy_encoded(conn, "ceiling_bars", data)
            seconds = time.perf_counter() - started
            await conn.execute("DROP TABLE ceiling_bars")
            return seconds

        ceiling_before = await ceiling_run()

        # Ours, as the service loads: partitions, no primary key during the COPY, each chunk
        # encoded by year in a worker thread while the previous one is copied, the key
        # built at the end.
        started = time.perf_counter()
        await bars_repo.ensure_partitions(conn, bars_repo.years_of(spec.sessions))
        await bars_repo.drop_primary_key(conn)
        pending = asyncio.create_task(asyncio.to_thread(bars_repo.encode_by_year, chunks[0]))
        for n in range(len(chunks)):
            ready = await pending
            if n + 1 < len(chunks):
                pending = asyncio.create_task(
                    asyncio.to_thread(bars_repo.encode_by_year, chunks[n + 1])
                )
            await bars_repo.copy_encoded_partitions(conn, ready)
        copied = time.perf_counter() - started
        await bars_repo.add_primary_key(conn)
        ours_seconds = time.perf_counter() - started
        ceiling_after = await ceiling_run()
        ceiling_seconds = (ceiling_before + ceiling_after) / 2
        say(
            f"ceiling {ceiling_before:.1f}s before and {ceiling_after:.1f}s after ours;"
            f" ours {ours_seconds:.1f}s (COPY into partitions {copied:.1f}s"
            f" + primary key {ours_seconds - copied:.1f}s)"
        )
        report(
            "bulk load: bars + primary key (rows/s)",
            rows / ours_seconds,
            "rows/s",
            ceiling=rows / ceiling_seconds,
            ceiling_name="raw binary COPY, unindexed",
            goal=">= 0.50 of ceiling",
            ok=ceiling_seconds / ours_seconds >= 0.5,
        )
        del chunks

        started = time.perf_counter()
        await bars_repo.analyze(conn)
        await actions_repo.copy_actions(conn, actions)
        await securities.set_shares_outstanding(conn, shares_ids, shares)
        last = calendar.to_date(spec.sessions[-1])
        await quotes.quotes_from_bars(conn, last)
        await loading.refresh_derived(conn, since=calendar.to_date(spec.sessions[0]), until=last)
        load_id = await loads.start(
            conn, securities=size, sessions=spec.days, rows_total=rows, seed=spec.seed
        )
        await loads.progress(conn, load_id, rows_loaded=rows, phase="bars")
        await bars_repo.analyze_small_tables(conn)
        await loads.finish(conn, load_id)
        derived = time.perf_counter() - started
        report("derived: analyze, actions, quotes, stats, index", derived, "s")
        conn_info["first_start_estimate_s"] = generated + ours_seconds + derived
        report(
            "first start (generate + load + derived), est.",
            conn_info["first_start_estimate_s"],
            "s",
            goal="a few minutes (<= 300 s)",
            ok=conn_info["first_start_estimate_s"] <= 300,
        )
        tickers = [
            s.ticker
            for s, gone in zip(universe.securities, sim.listing_dates(universe)[1], strict=True)
            if gone is None
        ]
        return tickers, conn_info
    finally:
        await conn.close()


# --------------------------------------------------------------------------- reads


async def read_phase(dsn: str, tickers: list[str], run: str) -> None:
    pool = await create_pool(dsn, schema="market", application_name="bench", min_size=2, max_size=4)
    redis = connect_redis(REDIS, prefix=f"bench:{run}:")
    rng = random.Random(1)
    try:
        trivial = await p50_ms(lambda: pool.fetchval("SELECT 1"), 200)
        report("database round trip (SELECT 1)", trivial, "ms")

        async def all_quotes() -> object:
            async with pool.acquire() as conn:
                return await quotes.all_quotes(conn)

        async def snapshot() -> object:
            async with pool.acquire() as conn:
                return await quotes.read_snapshot(conn)

        value = await p50_ms(snapshot, 100)
        report(
            "latest quotes, all securities, snapshot row (p50)",
            value,
            "ms",
            ceiling=trivial,
            ceiling_name="DB round trip",
            goal="<= 5 ms",
            ok=value <= 5,
        )
        report("  latest_quotes rows as arrays (p50)", await p50_ms(all_quotes, 50), "ms")
        started = time.perf_counter()
        await pool.fetch(
            "SELECT DISTINCT ON (security_id) security_id, day, close FROM daily_bars"
            " ORDER BY security_id, day DESC"
        )
        report(
            "  for contrast: DISTINCT ON over the bars",
            (time.perf_counter() - started) * 1000,
            "ms",
        )

        end = calendar.last_closed_session(datetime.now(UTC))
        start = end.replace(year=end.year - 1)

        async def history() -> object:
            ticker = rng.choice(tickers)
            series = await stocks.price_history(
                pool, ticker, start=start, end=end, interval="daily", adjusted=True
            )
            return _encode_json(series, start, end)

        value = await p50_ms(history, 200)
        report(
            "1y daily history of one security, uncached (p50)",
            value,
            "ms",
            ceiling=trivial,
            ceiling_name="DB round trip",
            goal="<= 5 ms",
            ok=value <= 5,
        )

        async def sectors() -> bytes:
            return orjson.dumps(
                await market_service.sectors(pool), option=orjson.OPT_SERIALIZE_NUMPY
            )

        value = await p50_ms(sectors, 20)
        report("sector performance, uncached (p50)", value, "ms", goal="<= 100 ms", ok=value <= 100)
        cache = ResponseCache(redis, namespace="bench", local_ttl=0.0)

        async def build() -> CachedBody:
            return CachedBody.build(await sectors())

        await cache.get_or_build("sectors", 600, build)
        value = await p50_ms(lambda: cache.get_or_build("sectors", 600, build), 200)
        report(
            "sector performance, cached in Redis (p50)",
            value,
            "ms",
            goal="<= 5 ms",
            ok=value <= 5,
        )
        local = ResponseCache(redis, namespace="bench", local_ttl=60.0)
        value = await p50_ms(lambda: local.get_or_build("sectors", 600, build), 500)
        report("sector performance, cached in process (p50)", value, "ms")

        async def overview() -> object:
            return await market_service.overview(pool)

        report("market overview, uncached (p50)", await p50_ms(overview, 20), "ms")

        async def analysis() -> object:
            return await stocks.analysis(pool, rng.choice(tickers))

        value = await p50_ms(analysis, 100)
        report(
            "analysis of one security, uncached (p50)",
            value,
            "ms",
            goal="<= 20 ms",
            ok=value <= 20,
        )
    finally:
        keys = [k async for k in redis.client.scan_iter(match=f"bench:{run}:*")]
        if keys:
            await redis.client.delete(*keys)
        await redis.close()
        await pool.close()


# --------------------------------------------------------------------------- feed capacity


async def feed_capacity_phase(dsn: str, run: str) -> None:
    """The feed alone, asked for far more than it can do: what it sustains, next to what
    one nats-py client can publish at all."""
    from services.market.feed import Feed

    pool = await create_pool(dsn, schema="market", application_name="bench-feed")
    bus = await connect_bus(NATS, name="bench-feed", prefix=f"benchcap{run}")
    received = 0

    async def count(msg: Any) -> None:
        nonlocal received
        received += 1

    async def ready() -> bool:
        return True

    await bus.client.subscribe(bus.subject("market.tick.>"), cb=count)
    feed = Feed(pool, bus, mode="always", rate=50_000, interval=0.02, flush_interval=1.0)
    feed.start(ready)
    try:
        await asyncio.sleep(3)
        received = 0
        started = time.perf_counter()
        await asyncio.sleep(5)
        rate = received / (time.perf_counter() - started)
    finally:
        await feed.stop()
    payload = (
        b'{"ticker":"ACME","price":123.45,"previous_close":122.0,"change":1.45,'
        b'"change_percent":1.1885,"volume":1234567,"ts":1764167400123}'
    )
    n = 100_000
    t0 = time.perf_counter()
    for i in range(n):
        await bus.client.publish(f"benchcap{run}.x.tick.T{i % 6000}", payload)
    await bus.client.flush()
    ceiling = n / (time.perf_counter() - t0)
    report(
        "feed capacity: ticks/s delivered (asked 50,000/s)",
        rate,
        "ticks/s",
        ceiling=ceiling,
        ceiling_name="raw nats-py publish, same payload",
        goal=">= 2000",
        ok=rate >= 2000,
    )
    await bus.close()
    await pool.close()


# --------------------------------------------------------------------------- HTTP + feed


def wrk(url: str, headers: dict[str, str], seconds: int = 6, connections: int = 32) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses")
    assert match, out
    return float(match.group(1))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


async def http_phase(dsn: str, run: str, workdir: Path) -> None:
    key = SigningKey.generate()
    pem = workdir / "key.pem"
    pem.write_bytes(key.to_pem())
    ports = {name: free_port() for name in ("jwks", "bare", "market")}
    python = sys.executable
    serve = str(ROOT / "bench" / "market" / "serve.py")
    env = {
        **os.environ,
        "MARKET_PORT": str(ports["market"]),
        "MARKET_DATABASE_URL": dsn,
        "MARKET_REDIS_URL": REDIS,
        "MARKET_REDIS_PREFIX": f"bench:{run}:",
        "MARKET_NATS_URL": NATS,
        "MARKET_NATS_PREFIX": f"bench{run}",
        "MARKET_JWKS_URL": f"http://127.0.0.1:{ports['jwks']}/jwks",
        "MARKET_UNIVERSE_AUTOLOAD": "false",
        "MARKET_FEED_MODE": "always",
        "MARKET_FEED_RATE": "2000",
        "MARKET_LOG_LEVEL": "WARNING",
    }
    commands = [
        [python, serve, "jwks", str(ports["jwks"]), str(pem)],
        [python, serve, "bare", str(ports["bare"])],
        [python, serve, "market"],
    ]
    procs = [await asyncio.to_thread(subprocess.Popen, command, env=env) for command in commands]
    market_pid = procs[2].pid
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{ports['jwks']}/jwks")
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{ports['bare']}/constant")
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{ports['market']}/ready")
        token = TokenSigner(key, issuer="bourse", audience="bourse-api").issue("bench", ["viewer"])
        auth = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{ports['market']}"
        for path in ("/api/v1/market/sectors", "/api/v1/stocks/ACME", "/api/v1/market/quotes"):
            response = await asyncio.to_thread(httpx.get, base + path, headers=auth, timeout=30)
            assert response.status_code == 200, response.text
        say("feed warming up (10 s)")
        bus = await connect_bus(NATS, name="bench", prefix=f"bench{run}")
        received = 0

        async def count(msg: Any) -> None:
            nonlocal received
            received += 1

        await asyncio.sleep(5)
        await bus.client.subscribe(bus.subject("market.tick.>"), cb=count)
        started = time.perf_counter()
        await asyncio.sleep(5)
        rate = received / (time.perf_counter() - started)
        # Ceiling: how fast this machine's NATS takes tick-sized messages from one client.
        payload = (
            b'{"ticker":"ACME","price":123.45,"previous_close":122.0,"change":1.45,'
            b'"change_percent":1.1885,"volume":1234567,"ts":1764167400123}'
        )
        n = 100_000
        t0 = time.perf_counter()
        for i in range(n):
            await bus.client.publish(f"bench{run}.x.tick.T{i % 6000}", payload)
        await bus.client.flush()
        ceiling = n / (time.perf_counter() - t0)
        report(
            "feed: ticks/s received by a NATS subscriber",
            rate,
            "ticks/s",
            ceiling=ceiling,
            ceiling_name="raw nats-py publish",
            goal=">= 2000 sustained",
            ok=rate >= 2000 * 0.97,
        )
        await bus.close()
        status = (
            await asyncio.to_thread(httpx.get, base + "/api/v1/market/status", headers=auth)
        ).json()
        say(f"feed status: {status['feed']}")

        results: dict[str, list[float]] = {}
        targets = {
            "bare": (f"http://127.0.0.1:{ports['bare']}/constant", {}),
            "sectors": (base + "/api/v1/market/sectors", {**auth, "Accept-Encoding": "gzip"}),
            "stock": (base + "/api/v1/stocks/ACME", auth),
            "quotes": (base + "/api/v1/market/quotes", {**auth, "Accept-Encoding": "gzip"}),
        }
        for _ in range(3):  # interleaved rounds: background noise hits every side alike
            for name, (url, headers) in targets.items():
                results.setdefault(name, []).append(await asyncio.to_thread(wrk, url, headers))
        bare = statistics.median(results["bare"])
        for name, label in (
            ("sectors", "cached GET /market/sectors, gzip (req/s)"),
            ("stock", "cached GET /stocks/{ticker} (req/s)"),
            ("quotes", "GET /market/quotes, 6,000 quotes, gzip (req/s)"),
        ):
            value = statistics.median(results[name])
            report(
                label,
                value,
                "req/s",
                ceiling=bare,
                ceiling_name="bare FastAPI constant",
                goal=">= 0.70 of ceiling" if name != "quotes" else "",
                ok=value / bare >= 0.7 if name != "quotes" else None,
            )
        memory = rss_mb(market_pid)
        report(
            "market service RSS (universe loaded, feed running)",
            memory,
            "MB",
            goal="<= 300 MB",
            ok=memory <= 300,
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    database = f"bourse_bench_market_{run}"
    out(
        f"market benchmark {time.strftime('%Y-%m-%d %H:%M:%S')} on {platform.node()}:"
        f" {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" size {args.size} x {args.years}y",
    )
    await ensure_database(ADMIN, database)
    try:
        await ensure_service_schema(ADMIN, database=database, role="bourse_market", schema="market")
        dsn = service_dsn(ADMIN, database=database, role="bourse_market")
        conn = await open_connection(dsn)
        from services.market.app import migrations

        await migrate(conn, "market", migrations())
        version = await conn.fetchval("SHOW server_version")
        await conn.close()
        say(f"PostgreSQL {version}; database {database}")
        tickers, _ = await load_phase(dsn, args.size, args.years)
        await read_phase(dsn, tickers, run)
        await feed_capacity_phase(dsn, run)
        if shutil.which("wrk"):
            with tempfile.TemporaryDirectory() as tmp:
                await http_phase(dsn, run, Path(tmp))
        else:
            say("wrk not found: HTTP throughput and memory figures skipped (apt-get install wrk)")
    finally:
        if not args.keep:
            await drop_database(ADMIN, database)
    if args.json:
        args.json.write_text(json.dumps(RESULTS, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
