"""A fixed-rate (open-loop) HTTP/1.1 load generator, for latency at a given request rate.

Requests are scheduled every ``1/rate`` seconds whatever happened to earlier ones, and
each latency is measured from the *scheduled* time, so a stall shows up in the tail
instead of silently lowering the rate (no coordinated omission; what wrk2 does). It runs
``connections`` keep-alive connections; a request waits for a free one.

Used by ``bench/gateway/run.py`` (wrk has no fixed-rate mode and wrk2 is not packaged).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    errors: int
    latencies_ms: list[float]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run_open_loop(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    *,
    rate: float,
    duration: float,
    connections: int = 32,
    warmup: float = 1.0,
) -> OpenLoopResult:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    ).encode()
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0
    measure_from = time.perf_counter() + warmup

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                scheduled = await queue.get()
                if scheduled is None:
                    return
                writer.write(request)
                status = await _read_response(reader)
                done = time.perf_counter()
                if status != 200:
                    errors += 1
                if scheduled >= measure_from:
                    latencies.append((done - scheduled) * 1000)
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections open
    interval = 1.0 / rate
    start = time.perf_counter()
    measure_from = start + warmup
    total = int((duration + warmup) * rate)
    for i in range(total):
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(scheduled)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return OpenLoopResult(rate=rate, sent=total, errors=errors, latencies_ms=latencies)
