"""The path of a request through the gateway, one module per step.

Read :mod:`gateway.pipeline.forwarded` first: it is the outermost ASGI callable and
reads top to bottom as the steps a forwarded request takes::

    0. wire.py        the head, bounded while uvicorn parses it   431, 414, 501, 400
    1. route.py       its rule in the route table (gateway/policy.py)   404, 405
    2. identify.py    the caller: token or API key -> Principal (gateway/authn.py)   401
    3. rate_limit.py  the caller's bucket (gateway/limits/)   429
    4. authorize.py   role and API-key scope   403
    5. forward.py     to the service, over pool.py (keep-alive HTTP/1.1) and circuit.py
                      (the breaker)   502, 503, 504, 413
       respond.py     how answers leave: the envelope, security headers, gzip

Requests the forwarded path does not take (the gateway's own routes, unknown routes,
WebSocket handshakes, CORS requests) run the same steps 1-4 as middleware inside
FastAPI's stack: :mod:`gateway.pipeline.full_stack`; a handshake's step 5 is
:mod:`gateway.pipeline.websocket`.
"""
