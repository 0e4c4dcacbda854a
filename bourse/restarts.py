"""When the supervisor restarts something that exited, and when it stops trying.

Pure bookkeeping, no processes: :class:`Track` is one supervised process's history
(restarts, recent crashes, the last exit and why) and :class:`RestartPolicy` decides from
it. The rules are those of Kubernetes' CrashLoopBackOff and compose's restart policy,
with a limit compose lacks:

- a process that exits is started again after a delay that doubles with each exit in a
  row (``initial``, ``2 * initial`` ... capped at ``ceiling``);
- a run that lasted ``stable_after`` seconds resets the doubling: the next exit is
  treated as the first;
- ``max_crashes`` exits within ``window`` seconds and it is given up: left stopped and
  reported by ``bourse status``, not restarted forever.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def exit_reason(returncode: int | None) -> str:
    """How a process ended, from its return code as :mod:`subprocess` reports it
    (negative: the signal that killed it; None: not known, it was not our child)."""
    if returncode is None:
        return "exited (status unknown: not a child of the supervisor)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


@dataclass(frozen=True)
class RestartPolicy:
    initial: float = 0.5  # seconds before the first restart
    ceiling: float = 30.0  # the longest delay between two restarts
    stable_after: float = 60.0  # a run this long resets the doubling
    max_crashes: int = 5  # this many exits ...
    window: float = 300.0  # ... within this many seconds: given up

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RestartPolicy:
        """The defaults, each overridable by ``BOURSE_RESTART_<FIELD>``
        (``BOURSE_RESTART_MAX_CRASHES=10``...)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, kind in (
            ("initial", float),
            ("ceiling", float),
            ("stable_after", float),
            ("max_crashes", int),
            ("window", float),
        ):
            raw = env.get(f"BOURSE_RESTART_{name.upper()}")
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError as exc:
                    raise ValueError(
                        f"BOURSE_RESTART_{name.upper()}={raw!r} is not a {kind.__name__}"
                    ) from exc
        return cls(**values)

    def delay(self, in_a_row: int) -> float:
        """Seconds to wait before restarting after the ``in_a_row``-th exit in a row."""
        return float(min(self.ceiling, self.initial * 2 ** max(0, in_a_row - 1)))


@dataclass
class Track:
    """One supervised process's history, as ``bourse status`` shows it."""

    restarts: int = 0
    in_a_row: int = 0  # exits since the last stable run
    crashes: list[float] = field(default_factory=list)  # when, within the window
    started_at: float | None = None  # wall clock of the current run's start
    last_exit: str | None = None
    last_exit_at: float | None = None
    given_up: bool = False
    next_start: float | None = None  # wall clock of the pending restart

    def started(self, now: float, *, restart: bool) -> None:
        self.started_at = now
        self.next_start = None
        if restart:
            self.restarts += 1

    def exited(self, reason: str, now: float, policy: RestartPolicy) -> None:
        """Record an exit; schedule the restart or give up."""
        ran = now - self.started_at if self.started_at is not None else 0.0
        self.in_a_row = 1 if ran >= policy.stable_after else self.in_a_row + 1
        self.crashes = [t for t in self.crashes if now - t < policy.window] + [now]
        self.last_exit, self.last_exit_at, self.started_at = reason, now, None
        if len(self.crashes) >= policy.max_crashes:
            self.given_up, self.next_start = True, None
        else:
            self.next_start = now + policy.delay(self.in_a_row)

    def to_state(self) -> dict[str, Any]:
        return {
            "restarts": self.restarts,
            "recent_crashes": len(self.crashes),
            "started_at": self.started_at,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "given_up": self.given_up,
            "next_start": self.next_start,
        }
