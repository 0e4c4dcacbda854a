"""Parts as background processes: started with their environment, waited for, stopped.

A stand-in part (a tiny HTTP server written to a temporary folder) plays the role of a
service, so these tests do not depend on the real services.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bourse import part_processes, processes
from bourse.home import Home
from bourse.tests.helpers import standin


def test_a_part_starts_with_its_environment_and_stops(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, port = standin(tmp_path)
    pid = part_processes.start_part(part, {**env, "STANDIN_GREETING": "hello"}, home)
    try:
        assert processes.read_pid(home.pid_file("standin")) == pid
        part_processes.wait_ready([part], {"standin": port}, home, timeout=20)
        assert httpx.get(f"http://127.0.0.1:{port}/greeting").text == "hello"
        [status] = part_processes.status([part], {"standin": port}, home)
        assert (status.pid, status.state) == (pid, "ready")
        assert "stand-in listening" in home.log("standin").read_text()
    finally:
        assert part_processes.stop_part(part, home) == pid
    assert not processes.alive(pid)
    assert not home.pid_file("standin").exists()
    [status] = part_processes.status([part], {"standin": port}, home)
    assert status.state == "stopped"
    assert part_processes.stop_part(part, home) is None


def test_a_part_that_dies_is_named_with_its_log(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, port = standin(tmp_path)
    part_processes.start_part(part, {**env, "STANDIN_MODE": "crash"}, home)
    with pytest.raises(part_processes.PartFailed) as failure:
        part_processes.wait_ready([part], {"standin": port}, home, timeout=20)
    assert failure.value.part == part
    assert "refusing to start" in str(failure.value)


def test_a_part_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, port = standin(tmp_path)
    pid = part_processes.start_part(part, {**env, "STANDIN_MODE": "stubborn"}, home)
    try:
        part_processes.wait_ready([part], {"standin": port}, home, timeout=20)
    finally:
        assert part_processes.stop_part(part, home, grace=0.5) == pid
    assert not processes.alive(pid)
