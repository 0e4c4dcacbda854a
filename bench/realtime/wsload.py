"""Load clients: many WebSocket connections in one process, on a minimal client protocol
(asyncio.Protocol, frame parsing by hand), so the clients cost far less CPU than the
server they measure. Two dialects over the same sockets:

- ``realtime``: the Bourse price stream (subscribe action; frames are arrays of quotes);
- ``nats``: nats-server's own WebSocket listener (CONNECT + SUB per ticker; MSG ops).

Run by ``fanout.py`` as a subprocess: reads one JSON job on stdin, connects, prints
``ready``, then answers ``reset`` / ``report`` / ``quit`` lines (reports are JSON).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import sys
import time

import orjson
import uvloop

HIST_MS = 20_000  # latency histogram: one bucket per millisecond


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.deliveries = 0
        self.frames = 0
        self.hist = [0] * HIST_MS
        self.started = time.monotonic()
        self.cpu = os.times()

    def record(self, ts: int, now_ms: int) -> None:
        lat = now_ms - ts
        self.hist[lat if 0 <= lat < HIST_MS else (0 if lat < 0 else HIST_MS - 1)] += 1
        self.deliveries += 1

    def report(self, closed: dict[int, int], connected: int) -> dict[str, object]:
        elapsed = time.monotonic() - self.started
        cpu_now = os.times()
        cpu = (cpu_now.user - self.cpu.user) + (cpu_now.system - self.cpu.system)
        return {
            "elapsed": elapsed,
            "deliveries": self.deliveries,
            "frames": self.frames,
            "p50": percentile(self.hist, 0.50),
            "p99": percentile(self.hist, 0.99),
            "max": max((i for i, n in enumerate(self.hist) if n), default=0),
            "client_cpu": cpu / elapsed if elapsed else 0.0,
            "closed": closed,
            "connected": connected,
            "hist": [[ms, n] for ms, n in enumerate(self.hist) if n],
        }


def percentile(hist: list[int], q: float) -> int:
    total = sum(hist)
    if not total:
        return 0
    target = total * q
    seen = 0
    for ms, count in enumerate(hist):
        seen += count
        if seen >= target:
            return ms
    return len(hist) - 1


def mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return key + masked


def client_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + mask(payload)


class Client(asyncio.Protocol):
    def __init__(self, job: dict, spec: dict, stats: Stats, closed: dict[int, int]) -> None:
        self.job = job
        self.spec = spec
        self.stats = stats
        self.closed = closed
        self.buffer = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.nats_buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.idle = bool(job.get("idle"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.job['path']} HTTP/1.1",
            f"Host: 127.0.0.1:{self.job['port']}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.spec.get("token"):
            lines.append(f"Authorization: Bearer {self.spec['token']}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("lost before upgrade"))

    def send(self, payload: bytes, opcode: int = 1) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(opcode, payload))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            del buf[: end + 4]
            if b" 101 " not in status:
                self.ready.set_exception(ConnectionError(status.decode()))
                return
            self.upgraded = True
            self.on_open()
            self.ready.set_result(None)
        now_ms = time.time_ns() // 1_000_000
        while True:
            if len(buf) < 2:
                return
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from("!H", buf, 2)[0]
                offset = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                offset = 10
            if len(buf) < offset + length:
                return
            payload = bytes(buf[offset : offset + length])
            del buf[: offset + length]
            opcode = b0 & 0x0F
            if opcode in (1, 2, 0):
                self.stats.frames += 1
                self.on_message(payload, now_ms)
            elif opcode == 9:
                self.send(payload, 10)
            elif opcode == 8:
                code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
                self.closed[code] = self.closed.get(code, 0) + 1
                if self.transport is not None:
                    self.transport.close()
                return

    # -- dialects --------------------------------------------------------------------------

    def on_open(self) -> None:
        tickers = self.spec["tickers"]
        if self.job["mode"] == "realtime":
            if tickers and not self.idle:
                self.send(orjson.dumps({"action": "subscribe", "tickers": tickers}))
        else:
            ops = [b'CONNECT {"verbose":false,"pedantic":false,"protocol":1,"echo":false}\r\n']
            if not self.idle:
                ops += [f"SUB market.tick.{t} {i + 1}\r\n".encode() for i, t in enumerate(tickers)]
            ops.append(b"PING\r\n")
            self.send(b"".join(ops), 2)

    def on_message(self, payload: bytes, now_ms: int) -> None:
        if self.job["mode"] == "realtime":
            for message in orjson.loads(payload):
                if message.get("type") == "quote" and not message.get("snapshot"):
                    self.stats.record(message["ts"], now_ms)
            return
        buf = self.nats_buffer
        buf += payload
        while True:
            end = buf.find(b"\r\n")
            if end < 0:
                return
            if buf.startswith(b"MSG "):
                size = int(bytes(buf[:end]).rsplit(b" ", 1)[1])
                if len(buf) < end + 2 + size + 2:
                    return
                body = bytes(buf[end + 2 : end + 2 + size])
                del buf[: end + 2 + size + 2]
                self.stats.record(orjson.loads(body)["ts"], now_ms)
            else:
                line = bytes(buf[:end])
                del buf[: end + 2]
                if line == b"PING":
                    self.send(b"PONG\r\n", 2)


async def main() -> None:
    job = orjson.loads(sys.stdin.readline())
    stats = Stats()
    closed: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    clients: list[Client] = []

    async def open_one(spec: dict) -> None:
        for attempt in range(5):
            try:
                _, client = await loop.create_connection(
                    lambda: Client(job, spec, stats, closed), "127.0.0.1", job["port"]
                )
                await asyncio.wait_for(client.ready, 30)
                clients.append(client)
                return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.2 * (attempt + 1))
        raise ConnectionError("could not connect")

    batch = 100
    specs = job["clients"]
    for start in range(0, len(specs), batch):
        await asyncio.gather(*(open_one(spec) for spec in specs[start : start + batch]))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).strip()
        if line == b"reset":
            stats.reset()
            sys.stdout.write("ok\n")
        elif line == b"report":
            connected = sum(1 for c in clients if c.transport and not c.transport.is_closing())
            sys.stdout.write(orjson.dumps(stats.report(closed, connected)).decode() + "\n")
        elif line in (b"quit", b""):
            for client in clients:
                if client.transport is not None:
                    client.transport.close()
            return
        sys.stdout.flush()


if __name__ == "__main__":
    uvloop.run(main())
