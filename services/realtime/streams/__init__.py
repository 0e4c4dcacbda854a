"""WebSocket streams of the realtime service: ``/api/v1/ws/prices`` and ``/api/v1/ws/alerts``.

- ``protocol``  the JSON messages (client actions, server messages); pure.
- ``hub``       one node's tick routing: shared NATS subscriptions, latest-value cache,
                snapshot on subscribe, fan-out to sessions.
- ``session``   one socket's bounded, conflating outbound buffer; the node's flusher.
- ``limits``    per-role limits and the cluster-wide count of a user's sockets (Redis).
- ``handshake`` authentication of the upgrade request.
- ``routes``    the two endpoints.
- ``metrics``   Prometheus metrics of the streams.

The protocol is documented in docs/realtime.md.
"""
