"""Rate limits: GCRA buckets in Redis, checked atomically in one round trip (a Lua
script), with an in-process fallback when Redis is unreachable.

See :mod:`gateway.limits.gcra` for the arithmetic and :mod:`gateway.limits.limiter` for
the Redis/local switch.
"""

from gateway.limits.gcra import Decision, Quota, rate_limit_headers
from gateway.limits.limiter import LimiterUnavailableError, RateLimiter

__all__ = ["Decision", "LimiterUnavailableError", "Quota", "RateLimiter", "rate_limit_headers"]
