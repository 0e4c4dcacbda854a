"""Fan-out benchmark of the realtime price stream, with nats-server's own WebSocket
listener as the ceiling, measured in the same run on the same feed.

    .venv/bin/python bench/realtime/fanout.py                 # the issue's base load
    .venv/bin/python bench/realtime/fanout.py --ramp          # + raise the feed until p99 > 100 ms

Each step: N clients subscribe to ``--per-client`` tickers drawn (seeded) from
``--tickers``; a publisher sends ``--rate`` ticks/s round-robin over the tickers on core
NATS (``market.tick.<T>``, the market contract). Latency is from the tick's ``ts``
(set just before publishing) to the client's receipt, in ms. Figures: quote deliveries/s,
frames/s, p50/p99/max, the node's CPU (cores) and RSS, RSS per idle connection, and the
same for nats-server. Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL;
default the local ones); starts its own nats-server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Bench, open_bench

from shared.messaging import Bus, connect_bus

HERE = Path(__file__).resolve().parent


def tickers_universe(n: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for i in range(n):
        name, x = "", i
        for _ in range(4):
            name += letters[x % 26]
            x //= 26
        out.append("T" + name)
    return out


@dataclass
class Step:
    clients: int
    per_client: int
    rate: int


@dataclass
class Result:
    target: str
    step: Step
    expected_per_s: float
    deliveries_per_s: float
    frames_per_s: float
    p50: int
    p99: int
    max: int
    server_cpu: float  # cores
    server_rss_mb: float
    client_cpu: float
    closed: dict[str, int]

    @property
    def per_core(self) -> float:
        return self.deliveries_per_s / self.server_cpu if self.server_cpu else 0.0


class Load:
    """One wsload.py subprocess holding a share of the clients."""

    def __init__(self, job: dict) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "wsload.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(job).decode() + "\n")
        self.proc.stdin.flush()

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"load clients failed: {line!r}")

    def command(self, name: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(30)

    @property
    def pid(self) -> int:
        return self.proc.pid


async def feed(bus: Bus, tickers: list[str], rate: int, stop: asyncio.Event) -> int:
    """Publish ``rate`` ticks/s round-robin over ``tickers`` until ``stop``."""
    slot = 0.005
    per_slot = rate * slot
    owed = 0.0
    sent = 0
    index = 0
    price = dict.fromkeys(tickers, 100.0)
    loop = asyncio.get_running_loop()
    next_slot = loop.time()
    rng = random.Random(7)
    while not stop.is_set():
        owed += per_slot
        count = int(owed)
        owed -= count
        for _ in range(count):
            ticker = tickers[index % len(tickers)]
            index += 1
            p = price[ticker] = round(price[ticker] * (1 + rng.uniform(-0.001, 0.001)), 4)
            payload = orjson.dumps(
                {
                    "ticker": ticker,
                    "price": p,
                    "previous_close": 100.0,
                    "change": round(p - 100.0, 4),
                    "change_percent": round(p - 100.0, 4),
                    "volume": 1000 + index,
                    "ts": time.time_ns() // 1_000_000,
                }
            )
            await bus.publish_raw("market.tick." + ticker, payload)
        sent += count
        next_slot += slot
        delay = next_slot - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            next_slot = loop.time()
    return sent


def jobs_for(
    mode: str, port: int, path: str, specs: list[dict], procs: int, idle: bool = False
) -> list[dict]:
    return [
        {"mode": mode, "port": port, "path": path, "clients": specs[i::procs], "idle": idle}
        for i in range(procs)
    ]


def merge(reports: list[dict]) -> dict:
    hist: dict[int, int] = {}
    for r in reports:
        for ms, n in r["hist"]:
            hist[ms] = hist.get(ms, 0) + n
    total = sum(hist.values())

    def pct(q: float) -> int:
        seen = 0
        for ms in sorted(hist):
            seen += hist[ms]
            if seen >= total * q:
                return ms
        return 0

    closed: dict[str, int] = {}
    for r in reports:
        for code, n in r["closed"].items():
            closed[str(code)] = closed.get(str(code), 0) + n
    return {
        "elapsed": max(r["elapsed"] for r in reports),
        "deliveries": sum(r["deliveries"] for r in reports),
        "frames": sum(r["frames"] for r in reports),
        "p50": pct(0.5),
        "p99": pct(0.99),
        "max": max(hist) if hist else 0,
        "client_cpu": sum(r["client_cpu"] for r in reports),
        "closed": closed,
    }


async def run_step(
    target: str,
    server: psutil.Process,
    port: int,
    path: str,
    step: Step,
    universe: list[str],
    bus: Bus,
    token: object,
    seconds: float,
    procs: int,
) -> Result:
    rng = random.Random(42)
    specs = [
        {
            "token": token(f"bench-{i}") if callable(token) else None,
            "tickers": rng.sample(universe, step.per_client),
        }
        for i in range(step.clients)
    ]
    subscribers = dict.fromkeys(universe, 0)
    for spec in specs:
        for t in spec["tickers"]:
            subscribers[t] += 1
    expected = step.rate * sum(subscribers.values()) / len(universe)
    mode = "realtime" if target == "realtime" else "nats"
    loads = [Load(job) for job in jobs_for(mode, port, path, specs, procs)]
    for load in loads:
        await asyncio.to_thread(load.wait_ready)
    stop = asyncio.Event()
    feeder = asyncio.create_task(feed(bus, universe, step.rate, stop))
    await asyncio.sleep(2.0)  # warm-up: subscriptions settle, snapshots go out
    for load in loads:
        load.command("reset")
    cpu0 = server.cpu_times()
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    reports = [orjson.loads(load.command("report")) for load in loads]
    cpu1 = server.cpu_times()
    elapsed = time.monotonic() - t0
    rss = server.memory_info().rss
    stop.set()
    await feeder
    for load in loads:
        load.close()
    merged = merge(reports)
    return Result(
        target=target,
        step=step,
        expected_per_s=expected,
        deliveries_per_s=merged["deliveries"] / merged["elapsed"],
        frames_per_s=merged["frames"] / merged["elapsed"],
        p50=merged["p50"],
        p99=merged["p99"],
        max=merged["max"],
        server_cpu=((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / elapsed,
        server_rss_mb=rss / 2**20,
        client_cpu=merged["client_cpu"],
        closed=merged["closed"],
    )


async def idle_rss(
    server: psutil.Process, port: int, path: str, clients: int, token: object, mode: str
) -> float:
    """RSS per idle connection (KB): RSS with ``clients`` idle sockets, minus without."""
    await asyncio.sleep(1.0)
    before = server.memory_info().rss
    specs = [
        {"token": token(f"idle-{i}") if callable(token) else None, "tickers": []}
        for i in range(clients)
    ]
    loads = [Load(job) for job in jobs_for(mode, port, path, specs, 1, idle=True)]
    for load in loads:
        await asyncio.to_thread(load.wait_ready)
    await asyncio.sleep(2.0)
    after = server.memory_info().rss
    for load in loads:
        load.close()
    return (after - before) / clients / 1024


def out(line: str) -> None:
    """Write a line of the report (stdout, flushed)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def row(r: Result) -> str:
    s = r.step
    closed = ",".join(f"{k}:{v}" for k, v in r.closed.items()) or "-"
    return (
        f"| {r.target} | {s.clients} | {s.per_client} | {s.rate:,} | {r.expected_per_s:,.0f} "
        f"| {r.deliveries_per_s:,.0f} | {r.frames_per_s:,.0f} | {r.p50} | {r.p99} | {r.max} "
        f"| {r.server_cpu:.2f} | {r.per_core:,.0f} | {r.server_rss_mb:.0f} "
        f"| {r.client_cpu:.2f} | {closed} |"
    )


HEADER = (
    "| target | clients | tickers/client | feed ticks/s | expected deliveries/s "
    "| deliveries/s | frames/s | p50 ms | p99 ms | max ms | server CPU (cores) "
    "| deliveries/s per core | server RSS MB | load-client CPU | closes |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--tickers", type=int, default=1000)
    parser.add_argument("--per-client", type=int, default=5)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ramp", action="store_true", help="raise the feed until p99 > 100 ms")
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--routing", choices=["per_ticker", "wildcard"], default="per_ticker")
    parser.add_argument("--coalesce-ms", type=float, default=0.0)
    parser.add_argument("--load-procs", type=int, default=1)
    parser.add_argument("--skip-ceiling", action="store_true")
    args = parser.parse_args()

    bench: Bench = await open_bench()
    results: list[Result] = []
    try:
        node = await bench.start_node(
            tick_routing=args.routing,
            coalesce_ms=str(args.coalesce_ms),
            viewer_max_subscriptions="1000",
            viewer_max_connections="1000",
            max_lag_seconds="30",
        )
        server = psutil.Process(node.process.pid)
        nats_server = psutil.Process(bench.nats.process.pid)
        bus = await connect_bus(bench.nats.url, name="bench-feed")
        universe = tickers_universe(args.tickers)

        def token(subject: str) -> str:
            return bench.jwks.token(subject)

        rt_idle = await idle_rss(
            server, node.port, "/api/v1/ws/prices", args.clients, token, "realtime"
        )
        nats_idle = await idle_rss(nats_server, bench.nats.ws_port, "/", args.clients, None, "nats")

        async def measure(step: Step) -> Result:
            rt = await run_step(
                "realtime",
                server,
                node.port,
                "/api/v1/ws/prices",
                step,
                universe,
                bus,
                token,
                args.seconds,
                args.load_procs,
            )
            results.append(rt)
            out(row(rt))
            if not args.skip_ceiling:
                ceiling = await run_step(
                    "nats-server ws",
                    nats_server,
                    bench.nats.ws_port,
                    "/",
                    step,
                    universe,
                    bus,
                    None,
                    args.seconds,
                    args.load_procs,
                )
                results.append(ceiling)
                out(row(ceiling))
            return rt

        rate = args.rate
        first = await measure(Step(args.clients, args.per_client, rate))
        if args.ramp:
            # Up (double the feed) until p99 crosses 100 ms; or, if the base load already
            # crosses it, down (halve) until it does not.
            going_up = first.p99 <= 100
            for _ in range(args.max_steps - 1):
                rate = rate * 2 if going_up else rate // 2
                if rate < 50:
                    break
                step = await measure(Step(args.clients, args.per_client, rate))
                if (step.p99 > 100) == going_up:
                    break
        await bus.close()
    finally:
        await bench.close()

    out("")
    out(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    out(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, python {platform.python_version()}"
    )
    out(f"command: {' '.join(sys.argv)}")
    out(f"routing: {args.routing}, coalesce: {args.coalesce_ms} ms")
    out(f"RSS per idle connection: realtime {rt_idle:.1f} KB, nats-server {nats_idle:.1f} KB")
    out("")
    out(HEADER)
    for r in results:
        out(row(r))
    out("")
    pairs = [
        (a, b)
        for a, b in zip(results[::2], results[1::2], strict=False)
        if a.target == "realtime" and b.target != "realtime"
    ]
    for a, b in pairs:
        out(
            f"feed {a.step.rate:,}/s: realtime/nats deliveries/s ratio "
            f"{a.deliveries_per_s / b.deliveries_per_s:.2f}; per-core ratio "
            f"{a.per_core / b.per_core if b.per_core else 0:.2f}"
        )
    under = [r for r in results if r.target == "realtime" and r.p99 <= 100]
    if under:
        best = max(under, key=lambda r: r.deliveries_per_s)
        out(
            f"highest realtime load with p99 <= 100 ms: {best.deliveries_per_s:,.0f} deliveries/s,"
            f" {best.per_core:,.0f} per core (feed {best.step.rate:,}/s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
