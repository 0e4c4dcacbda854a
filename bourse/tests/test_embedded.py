"""Embedded PostgreSQL, Redis and NATS: resolved when nothing else answers, started from
the installed packages, stopped, started again with their data intact."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
import redis

from bourse import infra, processes
from bourse.home import Home
from bourse.infra import InfraSettings
from bourse.tests.helpers import free_port, isolated_settings


async def _postgres_write(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE kept (value text)")
        await conn.execute("INSERT INTO kept VALUES ('survives')")
    finally:
        await conn.close()


async def _postgres_read(url: str) -> str | None:
    conn = await asyncpg.connect(url)
    try:
        value: str | None = await conn.fetchval("SELECT value FROM kept")
        return value
    finally:
        await conn.close()


async def _nats_write(url: str) -> None:
    client = await nats.connect(url)
    try:
        stream = client.jetstream()
        await stream.add_stream(name="KEPT", subjects=["kept.>"])
        await stream.publish("kept.one", b"survives")
    finally:
        await client.close()


async def _nats_read(url: str) -> bytes:
    client = await nats.connect(url)
    try:
        message = await client.jetstream().get_msg("KEPT", seq=1)
        return message.data or b""
    finally:
        await client.close()


def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder outside pytest's own temporary root: running as root, the embedded
    PostgreSQL runs as a system user that must traverse it, and pytest keeps its root
    0700 (resetting it whenever another pytest session starts on the machine)."""
    path = Path(tempfile.mkdtemp(prefix="bourse-embedded-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_servers_start_stop_and_keep_their_data(shared_tmp: Path) -> None:
    tmp_path = shared_tmp
    settings = isolated_settings(tmp_path / "home")
    try:
        first = infra.resolve(settings, report=lambda _: None)
        assert [e.source for e in first.endpoints()] == ["embedded"] * 3
        assert all(infra.PROBES[e.kind](e.url) for e in first.endpoints())
        assert infra.recorded(settings.home) == first

        asyncio.run(_postgres_write(first.admin_url))
        with _redis_client(first.redis_url) as client:
            client.set("kept", "survives")
        asyncio.run(_nats_write(first.nats_url))

        stopped = infra.stop_all_embedded(settings.home, lambda _: None)
        assert stopped == ["nats", "redis", "postgres"]
        assert not any(infra.PROBES[e.kind](e.url) for e in first.endpoints())
        assert all(infra.embedded_pid(kind, settings.home) is None for kind in infra.KINDS)

        second = infra.resolve(settings, report=lambda _: None)
        assert second == first
        assert asyncio.run(_postgres_read(second.admin_url)) == "survives"
        with _redis_client(second.redis_url) as client:
            assert client.get("kept") == b"survives"
        assert asyncio.run(_nats_read(second.nats_url)) == b"survives"

        # Running ones are reused, not started twice.
        pids = {kind: infra.embedded_pid(kind, settings.home) for kind in infra.KINDS}
        assert infra.resolve(settings, report=lambda _: None) == first
        assert {kind: infra.embedded_pid(kind, settings.home) for kind in infra.KINDS} == pids

        # Another home that finds them on its "local" ports uses them and starts nothing.
        other = InfraSettings(
            home=Home(tmp_path / "other"),
            env_urls={},
            local_urls={e.kind: e.url for e in first.endpoints()},
            ports=settings.ports,
            environ={},
        )
        found = infra.resolve(other, report=lambda _: None, record=False)
        assert [e.source for e in found.endpoints()] == ["local"] * 3
        assert not (tmp_path / "other").exists()
    finally:
        infra.stop_all_embedded(settings.home, lambda _: None)


def test_nats_without_jetstream_is_not_accepted(tmp_path: Path) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    binary = infra._venv_binary("nats-server")
    pid = processes.spawn_detached(
        [str(binary), "-a", "127.0.0.1", "-p", str(port)], log=tmp_path / "nats.log"
    )
    try:
        assert infra._wait_until(lambda: infra.nats_info(url) is not None, 10)
        assert not infra.probe_nats(url)
    finally:
        processes.terminate(pid, grace=5)


def test_a_taken_port_is_reported(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    port = settings.ports["redis"]
    binary = infra._venv_binary("nats-server")
    pid = processes.spawn_detached(
        [str(binary), "-a", "127.0.0.1", "-p", str(port)], log=tmp_path / "squatter.log"
    )
    try:
        assert infra._wait_until(lambda: infra.port_open("127.0.0.1", port), 10)
        try:
            infra.start_server("redis", settings.home, port, lambda _: None)
        except infra.InfraError as exc:
            assert "BOURSE_EMBEDDED_REDIS_PORT" in str(exc)
        else:
            raise AssertionError("a taken port must not be used")
    finally:
        processes.terminate(pid, grace=5)
