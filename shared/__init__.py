"""Bourse's common library: mechanisms every part needs, free of domain terms.

Modules (public surface):

- ``shared.settings``   -- per-service settings with an env prefix; fail fast, naming the variable.
- ``shared.context``    -- the request id that follows a request across HTTP and NATS.
- ``shared.log``        -- JSON logging stamped with the request id.
- ``shared.errors``     -- the error tree and the one envelope every error is rendered in.
- ``shared.jwt``        -- EdDSA token signing (gateway) and verification (everyone), JWKS.
- ``shared.db``         -- asyncpg pools bound to a service's schema and role; migrations.
- ``shared.messaging``  -- NATS: typed pub/sub and request/reply, JetStream, events, outbox.
- ``shared.redis``      -- Redis client with a key namespace.
- ``shared.health``     -- ``/live`` and ``/ready``.
- ``shared.http``       -- the FastAPI app factory every service builds on.

``shared`` imports no other part of Bourse, and nothing here names a business concept.
"""
