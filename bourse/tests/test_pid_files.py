"""Stale pid files: a pid the file names may belong to another process by now (a reboot,
a kill -9, pids reused). The launcher must neither wait on it nor signal it: it removes
the file, says so, and goes on."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bourse import infra, part_processes, processes
from bourse.home import Home
from bourse.parts import BY_NAME
from bourse.tests.helpers import free_port


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process whose pid a stale file will name."""
    process = subprocess.Popen(["sleep", "120"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def home() -> Iterator[Home]:
    # Outside pytest's base folder: PostgreSQL, run as another user when we are root,
    # must traverse every folder above its data, and pytest makes its own private again.
    root = Path(tempfile.mkdtemp(prefix="bourse-pids-"))
    root.chmod(0o711)
    try:
        yield Home(root)
    finally:
        infra.stop_all_embedded(Home(root), report=lambda _: None)
        shutil.rmtree(root, ignore_errors=True)


def test_a_reused_pid_in_the_redis_pid_file_is_not_waited_on_nor_signalled(
    home: Home, bystander: subprocess.Popen[bytes]
) -> None:
    home.prepare()
    pid_file = home.pid_file(infra.REDIS)
    processes.write_pid(pid_file, bystander.pid)
    said: list[str] = []

    started = time.monotonic()
    url = infra.start_server(infra.REDIS, home, free_port(), report=said.append)
    assert time.monotonic() - started < 10  # it used to wait 30 s, then blame Redis
    assert infra.probe_redis(url)
    assert any("stale" in line and str(bystander.pid) in line for line in said), said
    redis_pid = processes.read_pid(pid_file)
    assert redis_pid not in (None, bystander.pid)
    assert infra.embedded_pid(infra.REDIS, home) == redis_pid

    # Stopping: the real server is stopped; a file naming the bystander stops nothing.
    assert infra.stop_embedded(infra.REDIS, home)
    assert not processes.alive(redis_pid)
    processes.write_pid(pid_file, bystander.pid)
    assert not infra.stop_embedded(infra.REDIS, home, report=said.append)
    assert bystander.poll() is None  # never signalled
    assert not pid_file.exists()


def test_a_part_pid_file_naming_another_process_is_not_signalled(
    home: Home, bystander: subprocess.Popen[bytes]
) -> None:
    part = BY_NAME["market"]
    processes.write_pid(home.pid_file(part.name), bystander.pid)
    assert part_processes.running_pid(part, home) is None
    processes.write_pid(home.pid_file(part.name), bystander.pid)
    assert part_processes.stop_part(part, home, grace=1) is None
    assert bystander.poll() is None
    assert not home.pid_file(part.name).exists()


def test_a_stale_postmaster_pid_does_not_keep_postgres_down(
    home: Home, bystander: subprocess.Popen[bytes]
) -> None:
    port = free_port()
    url = infra.start_postgres(home, port, report=lambda _: None)
    assert infra.stop_postgres(home)
    # What a crash leaves behind, its pid now someone else's. PostgreSQL itself refuses
    # to start while the file names a live process; the launcher took it for a running
    # server and waited for it to answer.
    lock = home.data(infra.POSTGRES) / "postmaster.pid"
    lock.write_text(f"{bystander.pid}\n{home.data(infra.POSTGRES)}\n")
    said: list[str] = []
    assert infra.start_postgres(home, port, report=said.append) == url
    assert infra.probe_postgres(url)
    assert any("stale" in line for line in said), said
    assert bystander.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes a system user")
def test_running_as_root_says_it_creates_a_system_user() -> None:
    user = f"bourse-t{uuid.uuid4().hex[:8]}"
    said: list[str] = []
    try:
        account = infra._postgres_account(said.append, user=user)
        assert pwd.getpwnam(user).pw_uid == account.uid
        assert len(said) == 1 and user in said[0] and "root" in said[0], said
        said.clear()
        infra._postgres_account(said.append, user=user)
        assert said == []  # said once, when it is created
    finally:
        subprocess.run(["userdel", user], check=False, capture_output=True)
