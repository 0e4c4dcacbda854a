"""Background processes that outlive the command that started them.

A process is started through ``sh`` in a new session and left to ``init`` (the shell
exits at once), so it is never a child of the launcher: it survives the launcher,
Ctrl-C in the terminal does not reach it, and no zombie lingers in a long-lived
caller such as the test suite. Its pid goes to a file; stopping it is SIGTERM, then
SIGKILL after a grace period.

A pid file outlives its process (a reboot, a kill -9) and pids are reused, so a pid
read from a file is trusted only once the process is seen to be the one the file names
(:class:`Expected`: the program it runs and the folder it runs in, read from ``/proc``).
A file naming any other process is stale: it is removed, and that process never signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# ``$1`` is the log file, the rest is the command; ``$!`` is the command's own pid
# (a backgrounded simple command is exec'd in the forked child).
_DETACH = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


def spawn_detached(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` in the background, appending its output to ``log``; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["/bin/sh", "-c", _DETACH, "sh", str(log), *argv],
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    return int(result.stdout.strip())


def alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


@dataclass(frozen=True)
class Expected:
    """How to recognise the process a pid file names: ``program`` is one of the words it
    was started with (a binary's base name such as ``redis-server``, or a module such as
    ``services.market``), ``cwd`` the folder it runs in (a server's data folder)."""

    program: str
    cwd: Path | None = None


def command_line(pid: int) -> list[str] | None:
    """The words ``pid`` was started with (None if it is gone or cannot be read). A
    server that rewrites its title (Redis) shows its new title."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None  # procfs, and no such process
        return _ps_command(pid)
    except OSError:
        return None
    return [word for part in raw.split(b"\0") for word in part.decode("utf-8", "replace").split()]


def _ps_command(pid: int) -> list[str] | None:
    # Without procfs (macOS): ps shows the command line; the working folder is not known.
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.split() if result.returncode == 0 and result.stdout.strip() else None


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def is_expected(pid: int, expected: Expected) -> bool:
    """Whether the running ``pid`` is the process ``expected`` describes."""
    words = command_line(pid)
    if words is None:
        return False
    if not any(word == expected.program or Path(word).name == expected.program for word in words):
        return False
    if expected.cwd is not None and Path("/proc/self").exists():
        cwd = _cwd(pid)
        if cwd is None or cwd.resolve() != expected.cwd.resolve():
            return False
    return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


Reporter = Callable[[str], None]


def running_pid(
    path: Path, expected: Expected | None = None, *, report: Reporter | None = None
) -> int | None:
    """The pid recorded in ``path`` if that process still runs and is ``expected``.

    A file naming a process that is gone or is some other program is stale: it is
    removed (and ``report`` told why), so the caller starts afresh instead of waiting on,
    or signalling, an unrelated process.
    """
    pid = read_pid(path)
    if pid is None:
        return None
    if alive(pid) and (expected is None or is_expected(pid, expected)):
        return pid
    if alive(pid) and report is not None:
        what = " ".join(command_line(pid) or ["?"])[:80]
        report(f"{path} names pid {pid}, which is now {what!r}: removed the stale pid file")
    path.unlink(missing_ok=True)
    return None


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(pid: int, *, grace: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL if ``pid`` is still there after ``grace`` seconds.

    Returns True if SIGKILL was needed.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    if wait_gone(pid, grace):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    wait_gone(pid, 5.0)
    return True


def stop_recorded(
    path: Path,
    expected: Expected | None = None,
    *,
    grace: float = 10.0,
    report: Reporter | None = None,
) -> int | None:
    """Stop the process whose pid is in ``path`` (if it runs and is ``expected``) and
    remove the file.

    Returns the pid that was stopped, or None if nothing was running.
    """
    pid = running_pid(path, expected, report=report)
    if pid is not None:
        terminate(pid, grace=grace)
    path.unlink(missing_ok=True)
    return pid


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
