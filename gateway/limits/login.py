"""Brute-force protection for the login route.

Only failed attempts are charged, to two buckets at once: the client IP's and the
username's. Successful logins cost nothing, so a user who types their password right is
never locked out by their own use; a guesser runs out after a handful of tries, per
address and per account. Checks are strict: when Redis is down, logins are refused
(fail closed) rather than guarded by a per-process counter an attacker could spread
across instances.
"""

from __future__ import annotations

from gateway.limits.gcra import Decision, Quota
from gateway.limits.limiter import RateLimiter


class LoginGuard:
    def __init__(self, limiter: RateLimiter, *, per_ip: Quota, per_user: Quota) -> None:
        self._limiter = limiter
        self._quotas = [per_ip, per_user]

    def _keys(self, ip: str, username: str) -> list[str]:
        return [
            self._limiter.key("login", "ip", ip),
            # Lower-cased: usernames are case-insensitive, so is their budget.
            self._limiter.key("login", "user", username.lower()[:64]),
        ]

    async def check(self, ip: str, username: str) -> Decision:
        """Whether one more failure would still be allowed (charges nothing)."""
        return await self._limiter.check(
            self._keys(ip, username), self._quotas, commit=False, strict=True
        )

    async def charge_failure(self, ip: str, username: str) -> Decision:
        return await self._limiter.check(self._keys(ip, username), self._quotas, strict=True)
