"""Step 4: may this caller do this? The rule's least role, and for an API key, whether
the route takes keys at all and the key's scope (``read`` for GET/HEAD/OPTIONS, ``write``
for the rest). Refused: 403. Services still check roles and ownership themselves."""

from __future__ import annotations

from gateway.authn import Principal
from gateway.policy import Rule
from shared.auth import roles_reach
from shared.errors import PermissionDeniedError


def authorize(rule: Rule, principal: Principal | None) -> None:
    """Raises the 403; anonymous callers reach only public routes (step 2 saw to it)."""
    if principal is None:
        return
    if rule.access != "public" and not roles_reach(principal.roles, rule.access):
        raise PermissionDeniedError(f"This requires the {rule.access} role.")
    if principal.api_key_id is not None:
        if not rule.api_keys:
            raise PermissionDeniedError("API keys cannot be used here; log in instead.")
        if rule.scope not in principal.scopes:
            raise PermissionDeniedError(f"This API key lacks the {rule.scope} scope.")
