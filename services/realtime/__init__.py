"""Realtime context: WebSocket streams, alert rules and alert history (schema ``realtime``)."""
