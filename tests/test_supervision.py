"""``bourse up`` keeps what it started alive: the real command, the five parts and the
embedded PostgreSQL, Redis and NATS of a home of the test's own (on free ports; never the
machine's servers), exactly as on a machine that has none.

One run of the platform, its life in order: a part killed with SIGKILL is back and
answering through the gateway, and ``bourse status`` shows one restart and the signal; the
embedded Redis killed with SIGKILL is back; ``bourse down`` stops everything and nothing
is restarted after it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bourse import processes, supervisor
from bourse.home import Home
from bourse.parts import PARTS
from tests.platform import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent


def _port_base() -> int:
    """A gateway port with the four after it free too (the parts' ports follow it)."""
    for _ in range(50):
        base = free_port()
        if base + len(PARTS) < 65535 and all(_free(base + i) for i in range(len(PARTS))):
            return base
    raise RuntimeError("no five consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _environment(home: Path, base: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # Nothing of the test session's servers: this platform resolves its own.
        if not k.startswith("BOURSE_")
        and not k.endswith(("_DATABASE_URL", "_REDIS_URL", "_NATS_URL"))
    }
    env.update(
        {
            "BOURSE_HOME": str(home),
            "BOURSE_EMBEDDED": "1",
            "BOURSE_PORT_BASE": str(base),
            **{
                f"BOURSE_EMBEDDED_{k}_PORT": str(free_port()) for k in ("POSTGRES", "REDIS", "NATS")
            },
            "BOURSE_RESTART_INITIAL": "0.2",
            "MARKET_FEED_RATE": "100",  # the simulated feed would take a core from the tests
        }
    )
    return env


def _bourse(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bourse.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> tuple[Any, float]:
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return value, time.monotonic() - start
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout}s"
        time.sleep(0.1)


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _status_row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(name + " "))


def test_bourse_up_restarts_what_dies_and_down_stops_everything() -> None:
    # Not under pytest's tmp_path: the embedded PostgreSQL runs as an unprivileged user
    # when we are root and must traverse every folder above its data (tests/private_infra.py).
    root = Path(tempfile.mkdtemp(prefix="bourse-supervision-"))
    root.chmod(0o711)
    base = _port_base()
    env = _environment(root, base)
    home = Home(root)
    gateway = f"http://127.0.0.1:{base}"
    try:
        up = _bourse(env, "up", "--no-demo", "--timeout", "180")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "supervisor: pid" in up.stdout
        created = _bourse(
            env,
            "user",
            "create",
            "--username",
            "ops",
            "--role",
            "viewer",
            "--password",
            "ops-pass-123",
        )
        assert created.returncode == 0, created.stderr
        with httpx.Client(base_url=gateway, timeout=5) as client:
            token = client.post(
                "/api/v1/auth/token", data={"username": "ops", "password": "ops-pass-123"}
            )
            assert token.status_code == 200, token.text
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

            def market_answers() -> bool:
                try:
                    return client.get("/api/v1/stocks", headers=headers).status_code == 200
                except httpx.HTTPError:
                    return False

            assert market_answers()

            # SIGKILL a part: back and answering through the gateway within seconds.
            market = processes.read_pid(home.pid_file("market"))
            assert market is not None
            killed = time.monotonic()
            os.kill(market, signal.SIGKILL)
            _wait_for(lambda: not market_answers(), 10, "the gateway notices market is gone")
            _wait_for(
                lambda: processes.read_pid(home.pid_file("market")) not in (None, market),
                10,
                "market started again",
            )
            restarted = time.monotonic() - killed
            market_ready = f"http://127.0.0.1:{base + 1}/ready"
            _wait_for(lambda: _answers(client, market_ready), 30, "market ready again")
            ready = time.monotonic() - killed
            _wait_for(market_answers, 30, "market answers again through the gateway")
            took = time.monotonic() - killed
            status = _bourse(env, "status")
            assert status.returncode == 0, status.stdout + status.stderr
            row = _status_row(status.stdout, "market")
            assert " ready " in row and " 1 " in row and "killed by SIGKILL" in row, status.stdout
            for other in ("gateway", "recommendations", "portfolio", "realtime"):
                assert "killed" not in _status_row(status.stdout, other)
            print(  # noqa: T201
                f"market after SIGKILL: started again at {restarted:.1f}s, /ready at "
                f"{ready:.1f}s, answering through the gateway at {took:.1f}s"
            )

        # SIGKILL the embedded Redis: the supervisor starts it again on its port.
        redis_pid = processes.read_pid(home.pid_file("redis"))
        assert redis_pid is not None
        os.kill(redis_pid, signal.SIGKILL)
        redis_url = f"redis://127.0.0.1:{env['BOURSE_EMBEDDED_REDIS_PORT']}/0"

        def redis_answers() -> bool:
            try:
                return bool(redis.Redis.from_url(redis_url, socket_timeout=1).ping())
            except redis.RedisError:
                return False

        _wait_for(
            lambda: processes.read_pid(home.pid_file("redis")) != redis_pid and redis_answers(),
            20,
            "embedded Redis restarted",
        )
        units = supervisor.read_state(home)["units"]
        assert units["redis"]["restarts"] == 1 and units["market"]["restarts"] == 1

        # down: the supervisor first, so nothing it watched comes back.
        pids = {
            name: processes.read_pid(home.pid_file(name))
            for name in (*[p.name for p in PARTS], "redis", "nats", "supervisor")
        }
        down = _bourse(env, "down")
        assert down.returncode == 0, down.stderr
        assert down.stdout.index("supervisor: stopped") < down.stdout.index("gateway: stopped")
        time.sleep(2)  # longer than any backoff of this policy
        for name, pid in pids.items():
            assert pid is not None and not processes.alive(pid), name
            assert not home.pid_file(name).exists(), name
        with pytest.raises(httpx.ConnectError):
            httpx.get(gateway + "/live", timeout=1)
        state = supervisor.read_state(home)
        assert state["stopped_at"] is not None
        assert state["units"]["market"]["restarts"] == 1  # nothing restarted by down
    finally:
        _bourse(env, "down", timeout=120)
        shutil.rmtree(root, ignore_errors=True)
