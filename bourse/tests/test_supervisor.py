"""The supervisor keeps what it watches alive: an exit is recorded with its reason and
restarted after a backoff that doubles, and a process that keeps exiting is given up.

The restart rules are checked on their own (:mod:`bourse.restarts`, no processes), then
the supervisor process on a stand-in part (a tiny HTTP server).
The same loop under a real ``bourse up`` is tests/test_supervision.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from bourse import cli, processes, supervisor
from bourse.home import REPO_ROOT, Home
from bourse.restarts import RestartPolicy, Track, exit_reason
from bourse.tests.helpers import standin

# ------------------------------------------------------------------ the rules alone


def test_exit_reasons_name_the_signal_or_the_code() -> None:
    assert exit_reason(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_reason(-signal.SIGTERM) == "killed by SIGTERM"
    assert exit_reason(3) == "exited with code 3"
    assert "unknown" in exit_reason(None)


def test_the_delay_doubles_up_to_the_ceiling() -> None:
    policy = RestartPolicy(initial=0.5, ceiling=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_stable_run_resets_the_doubling() -> None:
    policy = RestartPolicy(initial=1.0, ceiling=60, stable_after=10, max_crashes=99)
    track = Track()
    track.started(0, restart=False)
    track.exited("x", 1, policy)  # ran 1 s: first in a row
    assert track.next_start == 2
    track.started(2, restart=True)
    track.exited("x", 3, policy)  # second in a row: 2 s
    assert track.next_start == 5
    track.started(5, restart=True)
    track.exited("x", 100, policy)  # ran 95 s: counts as the first again
    assert track.next_start == 101
    assert track.restarts == 2


def test_too_many_exits_in_the_window_give_up_and_old_ones_age_out() -> None:
    policy = RestartPolicy(initial=0.1, stable_after=1000, max_crashes=3, window=60)
    track = Track()
    for now in (0, 10, 100, 110):  # the first two fall out of the window by 100
        track.started(now, restart=now > 0)
        track.exited("exited with code 1", now + 1, policy)
        assert not track.given_up
    track.started(120, restart=True)
    track.exited("exited with code 1", 121, policy)  # 101, 111, 121: three within 60 s
    assert track.given_up and track.next_start is None
    assert track.to_state()["recent_crashes"] == 3


def test_the_policy_reads_its_overrides_and_names_a_bad_one() -> None:
    policy = RestartPolicy.from_env({"BOURSE_RESTART_MAX_CRASHES": "9"})
    assert policy.max_crashes == 9 and policy.initial == RestartPolicy().initial
    with pytest.raises(ValueError, match="BOURSE_RESTART_WINDOW"):
        RestartPolicy.from_env({"BOURSE_RESTART_WINDOW": "soon"})


# ----------------------------------------------------------------- the loop, for real


@contextmanager
def supervising(
    home: Home, spec: supervisor.Spec, policy: RestartPolicy, *, leave_running: bool = False
) -> Iterator[int]:
    """``python -m bourse.supervisor`` on ``spec`` with ``policy``; SIGTERM at the end."""
    spec.write(home)
    home.supervision_file.unlink(missing_ok=True)
    env = {**os.environ, "BOURSE_HOME": str(home.root)}
    env.update({f"BOURSE_RESTART_{k.upper()}": str(v) for k, v in asdict(policy).items()})
    home.log("supervisor").parent.mkdir(parents=True, exist_ok=True)
    with home.log("supervisor").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", supervisor.MODULE],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    processes.write_pid(home.pid_file("supervisor"), process.pid)  # as `bourse up` does
    try:
        # Its first look done (everything adopted or started): the state is its own.
        wait_for(lambda: supervisor.read_state(home).get("pid") == process.pid)
        yield process.pid
    finally:
        process.terminate()
        assert process.wait(10) == 0
        pid = processes.read_pid(home.pid_file("standin"))
        if not leave_running and pid is not None and processes.alive(pid):
            processes.terminate(pid, grace=2)


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def unit_state(home: Home) -> dict[str, Any]:
    units: dict[str, Any] = supervisor.read_state(home).get("units", {})
    unit: dict[str, Any] = units.get("standin", {})
    return unit


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_spec_is_private_and_reads_back(tmp_path: Path) -> None:
    home = Home(tmp_path)
    spec = supervisor.Spec(
        [supervisor.PartSpec("a", "mod.a", {"A_DATABASE_URL": "postgresql://a:pw@h/d"})],
        {"redis": 6390},
    )
    spec.write(home)
    assert home.supervisor_spec.stat().st_mode & 0o077 == 0
    assert supervisor.Spec.read(home) == spec


def test_a_killed_part_is_restarted_and_the_signal_recorded(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, port = standin(tmp_path)
    spec = supervisor.Spec([supervisor.PartSpec(part.name, part.module, env)])
    with supervising(home, spec, RestartPolicy(initial=0.2)):
        wait_for(lambda: answers(port))
        first = processes.read_pid(home.pid_file("standin"))
        assert first is not None and unit_state(home)["restarts"] == 0
        os.kill(first, signal.SIGKILL)
        state = wait_for(lambda: unit_state(home).get("restarts") == 1 and unit_state(home))
        assert state["last_exit"] == "killed by SIGKILL"
        assert state["pid"] not in (None, first)
        wait_for(lambda: answers(port))
        assert processes.read_pid(home.pid_file("standin")) == state["pid"]
        restarts, last = supervisor.describe(state)
        assert restarts == "1" and last.startswith("killed by SIGKILL at ")


def test_a_part_that_keeps_exiting_is_given_up_and_reported(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, _ = standin(tmp_path)
    spec = supervisor.Spec(
        [supervisor.PartSpec(part.name, part.module, {**env, "STANDIN_MODE": "crash"})]
    )
    policy = RestartPolicy(initial=0.05, ceiling=0.2, max_crashes=3, window=60)
    with supervising(home, spec, policy):
        state = wait_for(lambda: unit_state(home).get("given_up") and unit_state(home))
        time.sleep(1.0)  # long past any backoff: nothing more is started
        assert unit_state(home) == state
    assert (state["restarts"], state["recent_crashes"]) == (2, 3)
    assert state["last_exit"] == "exited with code 1" and state["pid"] is None
    assert home.log("standin").read_text().count("refusing to start") == 3
    _, last = supervisor.describe(state)
    assert last.startswith("GIVEN UP after 3 exits; last exited with code 1")


def test_bourse_status_reports_a_given_up_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stand-in plays market (its name), crashing at every start.
    home = Home(tmp_path / "home")
    part, env, _ = standin(tmp_path)
    spec = supervisor.Spec(
        [supervisor.PartSpec("market", part.module, {**env, "STANDIN_MODE": "crash"})]
    )
    policy = RestartPolicy(initial=0.05, ceiling=0.2, max_crashes=2, window=60)
    with supervising(home, spec, policy):
        wait_for(lambda: supervisor.read_state(home)["units"]["market"]["given_up"])
        monkeypatch.setenv("BOURSE_HOME", str(home.root))
        monkeypatch.setenv("BOURSE_PORT_BASE", "1")  # nothing listens on ports 1-5
        assert cli.main(["status"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("market "))
    assert " GIVEN UP " in row and " 1 " in row
    assert "GIVEN UP after 2 exits; last exited with code 1" in row
    assert "market kept exiting and is no longer restarted" in out
    supervisor_row = next(line for line in out.splitlines() if line.startswith("supervisor "))
    assert supervisor_row.split()[3] == "running"


def test_a_running_part_is_adopted_not_started_twice(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, port = standin(tmp_path)
    spec = supervisor.Spec([supervisor.PartSpec(part.name, part.module, env)])
    with supervising(home, spec, RestartPolicy(initial=0.2), leave_running=True):
        wait_for(lambda: answers(port))
        pid = processes.read_pid(home.pid_file("standin"))
    # A second supervisor (a repeated `bourse up`) watches the same process.
    assert pid is not None
    with supervising(home, spec, RestartPolicy(initial=0.2)):
        state = wait_for(lambda: unit_state(home).get("pid") and unit_state(home))
        assert state["pid"] == pid and state["restarts"] == 0
        assert processes.alive(pid)
        os.kill(pid, signal.SIGKILL)  # not its child: the reason is unknown, the restart is not
        state = wait_for(lambda: unit_state(home).get("restarts") == 1 and unit_state(home))
        assert "status unknown" in state["last_exit"]
        wait_for(lambda: answers(port))
