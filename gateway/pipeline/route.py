"""Step 1: which rule of the route table (:data:`gateway.policy.RULES`) a request falls
under. None: 404, or 405 with ``Allow`` when the path exists under other methods. Paths
with empty or dot segments are refused too: the service could normalise them differently
from the policy's match."""

from __future__ import annotations

from gateway.policy import NoRoute, Policy, Rule
from shared.errors import AppError, MethodNotAllowedError, NotFoundError


class UpgradeRequiredError(AppError):
    status_code = 426
    error_code = "UPGRADE_REQUIRED"
    default_message = "This is a WebSocket endpoint."


def unsafe_path(path: str) -> bool:
    return "//" in path or "/./" in path or "/../" in path or path.endswith(("/.", "/.."))


def match_route(policy: Policy, method: str, path: str) -> Rule:
    """The rule for ``method path``; raises :class:`NoRoute` (unsafe paths included)."""
    if unsafe_path(path):
        raise NoRoute()
    return policy.match(method, path)


def no_route_error(path: str, exc: NoRoute) -> AppError:
    """The refusal for a request without a rule."""
    if exc.allowed:
        return MethodNotAllowedError(headers={"Allow": ", ".join(exc.allowed)})
    return NotFoundError(f"No route for {path}.")
