"""SQL migrations of the transactional outbox and the consumer inbox.

A service applies them in its own schema with
``load_migrations("shared.messaging.migrations", source="outbox")``.
"""
