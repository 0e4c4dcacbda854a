"""NATS for every part of Bourse: a typed message bus, the event envelope, JetStream
streams and durable consumers, and the transactional outbox/inbox.

Nothing here knows a business term: services bring their own subjects, payload models
and event types.

- :func:`connect_bus` → :class:`Bus`: ``publish`` / ``subscribe`` (core NATS),
  ``request`` / ``serve`` (request/reply, errors as the common envelope),
  ``ensure_stream`` / ``publish_event`` / ``consume`` (JetStream).
- :class:`Event`: the envelope (``event_id``, ``event_type``, ``schema_version``,
  ``occurred_at``, ``source``, ``data``).
- :func:`enqueue` + :class:`OutboxRelay`: events that must not be lost;
  :func:`claim_once`: idempotent consumers; :class:`StreamAttachment`: a consumer of a
  stream another part publishes, attached once it exists. Tables: ``shared.messaging.migrations``.

Every message carries the request id (``X-Request-ID``) and every handler runs with it bound.
"""

from shared.messaging._wire import ERROR_HEADER, MSG_ID_HEADER, Delivered, MessageHandler
from shared.messaging.attach import StreamAttachment
from shared.messaging.bus import Bus, RequestHandler, Subscription, connect_bus
from shared.messaging.errors import (
    InvalidResponseError,
    MessagingUnavailableError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
)
from shared.messaging.events import Event
from shared.messaging.jetstream import Consumer, PublishAck
from shared.messaging.outbox import OutboxRelay, claim_once, enqueue, prune_inbox

MIGRATIONS_PACKAGE = "shared.messaging.migrations"

__all__ = [
    "ERROR_HEADER",
    "MIGRATIONS_PACKAGE",
    "MSG_ID_HEADER",
    "Bus",
    "Consumer",
    "Delivered",
    "Event",
    "InvalidResponseError",
    "MessageHandler",
    "MessagingUnavailableError",
    "NoRespondersError",
    "OutboxRelay",
    "PublishAck",
    "RemoteError",
    "RequestHandler",
    "RequestTimeoutError",
    "StreamAttachment",
    "Subscription",
    "claim_once",
    "connect_bus",
    "enqueue",
    "prune_inbox",
]
