"""A circuit breaker per upstream. Pure state; the clock is passed in.

closed    -- requests flow; ``threshold`` consecutive failures (unreachable, timed out)
             open the circuit.
open      -- requests are refused at once (503 in the envelope, with Retry-After) for
             ``open_seconds``, so a dead service costs callers nothing and gets air.
half-open -- after that, one trial request is let through: success closes the circuit,
             failure opens it again. Others are refused while the trial runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    threshold: int = 5
    open_seconds: float = 10.0
    failures: int = 0
    opened_at: float | None = None
    trial_running: bool = field(default=False)

    def state(self, now: float) -> str:
        if self.opened_at is None:
            return "closed"
        return "open" if now - self.opened_at < self.open_seconds else "half-open"

    def allow(self, now: float) -> bool:
        """Whether a request may go to the upstream now (claims the trial if half-open)."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "half-open" and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def retry_after(self, now: float) -> int:
        if self.opened_at is None:
            return 0
        return max(1, math.ceil(self.open_seconds - (now - self.opened_at)))

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_running = False

    def record_failure(self, now: float) -> None:
        self.failures += 1
        if self.trial_running or self.failures >= self.threshold:
            self.opened_at = now
        self.trial_running = False
