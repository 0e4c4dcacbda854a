"""Step 2: who is calling. The bearer token or API key of a request becomes a
:class:`gateway.authn.Principal` (verified tokens and API-key lookups are cached there).
Public routes need no credential. A missing or bad one is 401, and charged to the client
IP's ``public`` bucket (step 3), so guessing credentials is rate limited like any
anonymous traffic."""

from __future__ import annotations

from gateway.authn import Principal, credentials_from_headers
from gateway.edge import Edge
from gateway.pipeline.rate_limit import charge_anonymous
from gateway.policy import Rule
from shared.errors import AuthenticationError

Headers = list[tuple[bytes, bytes]]
Credentials = tuple[str | None, str | None]  # (bearer token, API key)


def request_credentials(headers: Headers) -> Credentials:
    """The credentials of an HTTP request: ``Authorization: Bearer`` or ``X-API-Key``."""
    return credentials_from_headers(headers)


async def identify(
    edge: Edge,
    rule: Rule,
    credentials: Credentials,
    client_ip: str | None,
    headers_out: Headers,
) -> Principal | None:
    """The caller (None on a public route); raises the 401 (or the 429 of a guesser)."""
    if rule.access == "public":
        return None
    try:
        principal = await edge.authenticator.authenticate(*credentials)
        if principal is None:
            raise AuthenticationError("A bearer token or an API key is required.")
    except AuthenticationError:
        await charge_anonymous(edge, client_ip, headers_out)
        raise
    return principal
