"""Two versions of the gateway side by side: what a change costs per request, measured
where the machine's noise cancels out.

    git archive <base-rev> | tar -x -C /tmp/gateway-base      # the version to compare with
    .venv/bin/python bench/gateway/compare.py /tmp/gateway-base --rounds 4

Both gateways run at once (one worker each, JWT check and Redis rate limit on every
request, as in ``run.py``) in front of one stub service; wrk loads them in turn, 64
connections for ``--duration`` seconds, alternating which goes first each round. The
figure to read is the gateway's CPU per request (from /proc, over each wrk run): on a
shared machine throughput swings with the neighbours' load, CPU per request much less,
and interleaving exposes both versions to the same swings. Needs ``wrk`` and the local
PostgreSQL, Redis and NATS, like ``run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.gateway.run import (  # noqa: E402
    HERE,
    PATH,
    Fleet,
    cpu_seconds,
    free_port,
    prepare_database,
    say,
    wait_http,
    wrk,
)
from shared.jwt import SigningKey, TokenSigner  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="a checkout of the version to compare with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    args = parser.parse_args()
    admin = os.environ.get("BOURSE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BOURSE_REDIS_URL", "redis://127.0.0.1:6379/0")
    nats_url = os.environ.get("BOURSE_NATS_URL", "nats://127.0.0.1:4222")
    work = Path(tempfile.mkdtemp(prefix="bourse-compare-"))
    fleet = Fleet(work)
    try:
        stub_port = free_port()
        fleet.start(
            "stub", [sys.executable, str(HERE / "stub_service.py"), "--port", str(stub_port)]
        )
        dsn = asyncio.run(prepare_database(admin, "bourse_bench"))
        key = SigningKey.generate()
        key_file = work / "jwt.pem"
        key_file.write_bytes(key.to_pem())
        token = TokenSigner(key, issuer="bourse", audience="bourse-api", ttl_seconds=900).issue(
            "bench-user", ["viewer"]
        )
        stub_url = f"http://127.0.0.1:{stub_port}"
        wait_http(stub_url + PATH)
        gateways: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        for name, tree in (("base", args.base.resolve()), ("this", REPO)):
            port, run = free_port(), uuid.uuid4().hex[:8]
            env = {
                **os.environ,
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(port),
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
                "GATEWAY_RATE_LIMIT_READ": "1000000000/60s",
            }
            log = (work / f"gateway-{name}.log").open("ab")
            # ``python -m gateway`` from the tree: its own code comes first on sys.path.
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tree,
            )
            fleet.processes.append(process)
            wait_http(f"http://127.0.0.1:{port}/live")
            gateways[name] = (process, port)
        auth = {"Authorization": f"Bearer {token}"}
        for _, port in gateways.values():  # warm up both
            wrk(f"http://127.0.0.1:{port}{PATH}", connections=64, duration=2, headers=auth)
        cpu: dict[str, list[float]] = {name: [] for name in gateways}
        rps: dict[str, list[float]] = {name: [] for name in gateways}
        for round_ in range(args.rounds):
            order = list(gateways) if round_ % 2 == 0 else list(reversed(gateways))
            for name in order:
                process, port = gateways[name]
                before = cpu_seconds(process.pid)
                result = wrk(
                    f"http://127.0.0.1:{port}{PATH}",
                    connections=64,
                    duration=args.duration,
                    headers=auth,
                )
                per_request = (cpu_seconds(process.pid) - before) * 1000 / result.requests
                cpu[name].append(per_request)
                rps[name].append(result.rps)
                say(
                    f"round {round_ + 1} {name:5} {result.rps:8.0f} req/s"
                    f"  {per_request:.4f} ms CPU/req  non-2xx {result.non_2xx}"
                )
        for name in gateways:
            say(
                f"{name:5} median {statistics.median(cpu[name]):.4f} ms CPU/req"
                f" (runs {', '.join(f'{c:.3f}' for c in sorted(cpu[name]))}),"
                f" median {statistics.median(rps[name]):.0f} req/s"
            )
    finally:
        fleet.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
