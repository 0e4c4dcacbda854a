"""The gateway benchmark: what putting the gateway in front of a service costs, next to
what nginx costs, measured in one run on one machine with one load generator.

    .venv/bin/python bench/gateway/run.py                 # ~2 minutes
    .venv/bin/python bench/gateway/run.py --variants      # + what each gateway feature costs
    .venv/bin/python bench/gateway/run.py --duration 5    # quicker, noisier

Needs ``wrk`` and ``nginx`` (Debian/Ubuntu: ``apt-get install -y wrk nginx-light``;
macOS: ``brew install wrk nginx``); without them it says so and exits 0 having measured
nothing. It also needs the local PostgreSQL, Redis and NATS the test suite uses (the
gateway migrates its schema at start-up): ``BOURSE_DATABASE_URL`` (superuser DSN,
default ``postgresql://postgres@127.0.0.1:5432/postgres``), ``BOURSE_REDIS_URL``,
``BOURSE_NATS_URL``. It keeps the gateway's schema in a database ``bourse_bench``, reused
by later runs (drop it when done: ``DROP DATABASE bourse_bench``).

Three targets serve ``GET /api/v1/stocks/ACME``:
  direct   -- the stub service (``stub_service.py``: uvicorn + a fixed JSON answer);
  nginx    -- nginx as a reverse proxy to it, one worker, upstream keep-alive (the anchor);
  gateway  -- ``python -m gateway``, one worker, with a valid JWT and the Redis
              rate-limit check on every request (all four upstream URLs = the stub).
For each: throughput at 64 connections (wrk), p50/p99 with 1 connection (wrk, so one
request at a time: "unloaded"), p50/p99 at a fixed 1,000 req/s (``openloop.py``), and the
CPU time the proxy process spent per request during the 64-connection run.

The machine is shared and noisy: read the ratios to the direct and nginx figures measured
in the same run, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.gateway.openloop import run_open_loop  # noqa: E402
from shared.db import ensure_database, ensure_service_schema, service_dsn  # noqa: E402
from shared.jwt import SigningKey, TokenSigner  # noqa: E402

PATH = "/api/v1/stocks/ACME"
HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def say(*lines: str) -> None:
    """The benchmark's output (a command-line report, so stdout)."""
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """CPU (user + system) of ``pid`` and its children processes so far."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid = int(fields[1])
        if int(entry.name) == pid or ppid == pid:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return float(match[1]) * _UNITS[match[2]]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int


def wrk(url: str, *, connections: int, duration: float, headers: dict[str, str]) -> WrkResult:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
    for name, value in headers.items():
        command[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(rps, p50, p99, requests, int(bad[1]) if bad else 0)


@dataclass
class TargetResult:
    name: str
    rps_64: float = 0.0
    p50_64_ms: float = 0.0
    p99_64_ms: float = 0.0
    p50_unloaded_ms: float = 0.0
    p99_unloaded_ms: float = 0.0
    p50_at_rate_ms: float = 0.0
    p99_at_rate_ms: float = 0.0
    cpu_ms_per_request: float = 0.0
    errors: int = 0
    notes: list[str] = field(default_factory=list)


def measure(
    name: str,
    url: str,
    pid: int,
    headers: dict[str, str],
    *,
    duration: float,
    connections: int,
    rate: float,
    full: bool = True,
) -> TargetResult:
    result = TargetResult(name)
    wrk(url, connections=connections, duration=2, headers=headers)  # warm up pools and caches
    before = cpu_seconds(pid)
    loaded = wrk(url, connections=connections, duration=duration, headers=headers)
    spent = cpu_seconds(pid) - before
    result.rps_64, result.p50_64_ms, result.p99_64_ms = loaded.rps, loaded.p50_ms, loaded.p99_ms
    result.cpu_ms_per_request = spent * 1000 / max(1, loaded.requests)
    result.errors = loaded.non_2xx
    if full:
        single = wrk(url, connections=1, duration=max(3.0, duration / 2), headers=headers)
        result.p50_unloaded_ms, result.p99_unloaded_ms = single.p50_ms, single.p99_ms
        result.errors += single.non_2xx
        host, port = url.split("//")[1].split("/")[0].split(":")
        at_rate = asyncio.run(
            run_open_loop(host, int(port), PATH, headers, rate=rate, duration=duration)
        )
        result.p50_at_rate_ms = at_rate.percentile(50)
        result.p99_at_rate_ms = at_rate.percentile(99)
        result.errors += at_rate.errors
    return result


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


NGINX_CONF = """\
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    upstream service {{
        server 127.0.0.1:{upstream};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


async def prepare_database(admin: str, database: str) -> str:
    await ensure_database(admin, database)
    await ensure_service_schema(admin, database=database, role="bourse_gateway", schema="identity")
    return service_dsn(admin, database=database, role="bourse_gateway")


class Fleet:
    """The processes of one run; stopped together."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self.processes):
            self.stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0, help="req/s of the fixed-rate run")
    parser.add_argument("--variants", action="store_true", help="also measure feature costs")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    missing = [tool for tool, path in (("wrk", shutil.which("wrk")), ("nginx", nginx)) if not path]
    if missing:
        say(
            f"SKIPPED: {', '.join(missing)} not installed. Install with"
            " `apt-get install -y wrk nginx-light` (Debian/Ubuntu) or `brew install wrk nginx`."
        )
        return 0
    assert nginx is not None

    admin = os.environ.get("BOURSE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BOURSE_REDIS_URL", "redis://127.0.0.1:6379/0")
    nats_url = os.environ.get("BOURSE_NATS_URL", "nats://127.0.0.1:4222")
    run = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="bourse-bench-"))
    fleet = Fleet(work)
    try:
        stub_port, nginx_port, gateway_port = free_port(), free_port(), free_port()
        stub = fleet.start(
            "stub", [sys.executable, str(HERE / "stub_service.py"), "--port", str(stub_port)]
        )
        (work / "nginx.conf").write_text(
            NGINX_CONF.format(work=work, upstream=stub_port, port=nginx_port)
        )
        nginx_process = fleet.start(
            "nginx", [nginx, "-c", str(work / "nginx.conf"), "-p", str(work), "-g", "daemon off;"]
        )
        database = "bourse_bench"
        dsn = asyncio.run(prepare_database(admin, database))
        key = SigningKey.generate()
        key_file = work / "jwt.pem"
        key_file.write_bytes(key.to_pem())
        token = TokenSigner(key, issuer="bourse", audience="bourse-api", ttl_seconds=900).issue(
            "bench-user", ["viewer"]
        )
        stub_url = f"http://127.0.0.1:{stub_port}"
        gateway_env = {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(gateway_port),
            "GATEWAY_DATABASE_URL": dsn,
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_REDIS_PREFIX": f"bench:{run}:",
            "GATEWAY_NATS_URL": nats_url,
            "GATEWAY_NATS_PREFIX": f"bench{run}",
            "GATEWAY_JWT_PRIVATE_KEY_FILE": str(key_file),
            "GATEWAY_MARKET_URL": stub_url,
            "GATEWAY_RECOMMENDATIONS_URL": stub_url,
            "GATEWAY_PORTFOLIO_URL": stub_url,
            "GATEWAY_REALTIME_URL": stub_url,
            # Enforced, but far above what the benchmark sends: every request still pays
            # for the Redis round trip.
            "GATEWAY_RATE_LIMIT_READ": "1000000000/60s",
        }

        def start_gateway(tag: str, extra: dict[str, str]) -> subprocess.Popen[bytes]:
            process = fleet.start(
                f"gateway-{tag}", [sys.executable, "-m", "gateway"], {**gateway_env, **extra}
            )
            wait_http(f"http://127.0.0.1:{gateway_port}/live")
            return process

        gateway = start_gateway("full", {})
        wait_http(stub_url + PATH)
        wait_http(f"http://127.0.0.1:{nginx_port}{PATH}")
        auth = {"Authorization": f"Bearer {token}"}
        probe = httpx.get(f"http://127.0.0.1:{gateway_port}{PATH}", headers=auth)
        assert probe.status_code == 200 and "ratelimit" in probe.headers, probe.text

        options = {"duration": args.duration, "connections": args.connections, "rate": args.rate}
        results = [
            measure("direct", stub_url + PATH, stub.pid, {}, **options),
            measure(
                "nginx", f"http://127.0.0.1:{nginx_port}{PATH}", nginx_process.pid, {}, **options
            ),
            measure(
                "gateway", f"http://127.0.0.1:{gateway_port}{PATH}", gateway.pid, auth, **options
            ),
        ]
        variants: list[TargetResult] = []
        if args.variants:
            fleet.stop(gateway)
            for tag, extra in (
                ("gateway, no rate limit", {"GATEWAY_RATE_LIMIT_ENABLED": "false"}),
                ("gateway, no token cache", {"GATEWAY_VERIFIED_TOKEN_CACHE_SIZE": "0"}),
                ("gateway, log level WARNING", {"GATEWAY_LOG_LEVEL": "WARNING"}),
            ):
                process = start_gateway(tag.replace(" ", "-").replace(",", ""), extra)
                variants.append(
                    measure(
                        tag,
                        f"http://127.0.0.1:{gateway_port}{PATH}",
                        process.pid,
                        auth,
                        **options,
                        full=False,
                    )
                )
                fleet.stop(process)
            for client in ("pool", "aiohttp", "httpx"):
                port = free_port()
                process = fleet.start(
                    f"minimal-{client}",
                    [
                        sys.executable,
                        str(HERE / "minimal_proxy.py"),
                        "--port",
                        str(port),
                        "--upstream",
                        stub_url,
                        "--client",
                        client,
                    ],
                )
                wait_http(f"http://127.0.0.1:{port}{PATH}")
                variants.append(
                    measure(
                        f"bare proxy, {client}",
                        f"http://127.0.0.1:{port}{PATH}",
                        process.pid,
                        {},
                        **options,
                        full=False,
                    )
                )
                fleet.stop(process)
        report(results, variants, args)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "date": datetime.now(UTC).isoformat(timespec="seconds"),
                        "machine": machine(),
                        "options": options,
                        "results": [asdict(r) for r in results],
                        "variants": [asdict(v) for v in variants],
                    },
                    indent=2,
                )
            )
        return 0
    finally:
        fleet.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{system}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def report(
    results: list[TargetResult], variants: list[TargetResult], args: argparse.Namespace
) -> None:
    direct, nginx, gateway = results
    say(f"# gateway benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    say(f"machine: {machine()}")
    say(
        f"{args.connections} connections and 1 connection with wrk, {args.rate:g} req/s open loop,"
        f" {args.duration:g} s each; GET {PATH}\n"
    )
    header = (
        f"{'target':<28}{'req/s @64':>11}{'p50 @1':>9}{'p99 @1':>9}"
        f"{'p50 @rate':>11}{'p99 @rate':>11}{'CPU ms/req':>12}{'errors':>8}"
    )
    say(header)
    say("-" * len(header))
    for r in [*results, *variants]:
        at_rate = (
            f"{r.p50_at_rate_ms:>11.3f}{r.p99_at_rate_ms:>11.3f}"
            if r.p50_at_rate_ms
            else f"{'':>22}"
        )
        unloaded = (
            f"{r.p50_unloaded_ms:>9.3f}{r.p99_unloaded_ms:>9.3f}"
            if r.p50_unloaded_ms
            else f"{'':>18}"
        )
        say(
            f"{r.name:<28}{r.rps_64:>11.0f}{unloaded}{at_rate}{r.cpu_ms_per_request:>12.3f}{r.errors:>8}"
        )
    say("")
    say("ratios (same run):")
    say(f"  nginx   throughput @64 / direct: {nginx.rps_64 / direct.rps_64:6.2f}")
    say(
        f"  gateway throughput @64 / direct: {gateway.rps_64 / direct.rps_64:6.2f}   (goal >= 0.30)"
    )
    say(f"  gateway throughput @64 / nginx:  {gateway.rps_64 / nginx.rps_64:6.2f}")
    say(f"  gateway req/s per worker @64:    {gateway.rps_64:6.0f}   (goal >= 2500)")
    say(
        f"  added p50 unloaded: nginx {nginx.p50_unloaded_ms - direct.p50_unloaded_ms:+.3f} ms,"
        f" gateway {gateway.p50_unloaded_ms - direct.p50_unloaded_ms:+.3f} ms   (goal <= 0.5)"
    )
    say(
        f"  added p99 @{args.rate:g} req/s:"
        f" nginx {nginx.p99_at_rate_ms - direct.p99_at_rate_ms:+.3f} ms,"
        f" gateway {gateway.p99_at_rate_ms - direct.p99_at_rate_ms:+.3f} ms   (goal <= 5)"
    )
    say(
        f"  CPU per request: gateway {gateway.cpu_ms_per_request:.3f} ms, nginx"
        f" {nginx.cpu_ms_per_request:.3f} ms, direct service {direct.cpu_ms_per_request:.3f} ms"
        "   (goal <= 0.5)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
