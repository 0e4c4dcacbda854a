"""Running the platform's processes for end-to-end tests.

Each part runs as a real process (``python -m <module>``), configured exactly as
``bourse up`` configures it (``bourse.environment.part_environment``), against the test
session's database and namespaces.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bourse.environment import part_environment
from bourse.parts import PARTS, Part

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    part: Part
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        return self.popen.returncode


def start_part(part: Part, env: Mapping[str, str], log_dir: Path, *, tag: str = "") -> Process:
    port = int(env[f"{part.env_prefix}_PORT"])
    log = log_dir / f"{part.name}{tag}.log"
    handle = log.open("ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", part.module],
        env={**os.environ, **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    handle.close()
    return Process(part, port, popen, log)


def wait_ready(processes: list[Process], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(processes)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            for proc in list(pending):
                if proc.popen.poll() is not None:
                    raise RuntimeError(
                        f"{proc.part.name} exited with {proc.popen.returncode}:\n"
                        + proc.log_text()[-3000:]
                    )
                try:
                    if client.get(proc.url + "/ready").status_code == 200:
                        pending.remove(proc)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                names = ", ".join(p.part.name for p in pending)
                logs = "\n".join(p.log_text()[-2000:] for p in pending)
                raise RuntimeError(f"not ready after {timeout}s: {names}\n{logs}")
            time.sleep(0.1)


@dataclass
class Platform:
    """The five parts running against one test session's infrastructure."""

    processes: dict[str, Process]
    environments: dict[str, dict[str, str]]
    log_dir: Path
    extra: list[Process] = field(default_factory=list)

    @property
    def gateway_url(self) -> str:
        return self.processes["gateway"].url

    def start_extra(self, name: str, overrides: Mapping[str, str], *, tag: str) -> Process:
        """Another instance of part ``name`` on a new port, with ``overrides`` applied."""
        part = next(p for p in PARTS if p.name == name)
        env = {**self.environments[name], f"{part.env_prefix}_PORT": str(free_port()), **overrides}
        proc = start_part(part, env, self.log_dir, tag=tag)
        self.extra.append(proc)
        return proc

    def stop(self) -> None:
        for proc in [*self.extra, *self.processes.values()]:
            proc.stop()


def start_platform(
    infra: object,
    *,
    database: str,
    redis_prefix: str,
    nats_prefix: str,
    signing_key: Path,
    log_dir: Path,
) -> Platform:
    ports = {part.name: free_port() for part in PARTS}
    environments = {
        part.name: part_environment(
            part,
            infra,  # type: ignore[arg-type]
            database=database,
            redis_prefix=redis_prefix,
            nats_prefix=nats_prefix,
            ports=ports,
            signing_key=signing_key,
        )
        for part in PARTS
    }
    # The simulated feed at its default 2,000 ticks/s would take a core from the tests.
    environments["market"].setdefault("MARKET_FEED_RATE", "200")
    processes = {part.name: start_part(part, environments[part.name], log_dir) for part in PARTS}
    platform = Platform(processes, environments, log_dir)
    try:
        wait_ready(list(processes.values()))
    except BaseException:
        platform.stop()
        raise
    return platform
