"""Authentication of the WebSocket upgrade request.

The gateway authenticates the client (bearer token, ``?access_token=``, or an API key)
and opens the upstream socket with ``Authorization: Bearer <jwt>``. Direct connections
(tests, benchmarks, a node behind another proxy) may instead pass ``?access_token=`` —
browsers cannot set headers on a WebSocket. Either way the token is verified with the
shared verifier, exactly as for HTTP. A refused upgrade is an HTTP 401/403 in the common
error envelope (the ASGI ``websocket.http.response`` extension), not a bare 403.
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from shared.auth import role_at_least
from shared.errors import AppError, AuthenticationError, PermissionDeniedError, error_response
from shared.jwt import Claims, TokenVerifier


def _token(websocket: WebSocket) -> str:
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    query = websocket.query_params.get("access_token", "")
    if query:
        return query
    raise AuthenticationError("A bearer token is required (Authorization header or access_token).")


async def authenticate(websocket: WebSocket, minimum_role: str = "viewer") -> Claims | None:
    """The caller's verified claims; or None after refusing the upgrade."""
    verifier: TokenVerifier = websocket.app.state.token_verifier
    try:
        claims = await verifier.verify(_token(websocket))
        if not role_at_least(claims, minimum_role):
            raise PermissionDeniedError(f"This requires the {minimum_role} role.")
    except AppError as exc:
        await refuse(websocket, exc)
        return None
    return claims


async def refuse(websocket: WebSocket, exc: AppError) -> None:
    """Answer the upgrade with ``exc`` as an HTTP error in the envelope."""
    response = error_response(
        exc.status_code, exc.error_code, exc.message, exc.details, exc.headers
    )
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:  # the server cannot send a response body: a bare refusal (HTTP 403)
        await websocket.close(code=1008, reason=exc.error_code)
