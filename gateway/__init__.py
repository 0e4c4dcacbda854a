"""The gateway: the only door into the platform.

It owns identity (schema ``identity``: users, and later refresh tokens and API keys)
and the edge: routing ``/api/v1/...`` to the services, request ids, the platform's
health. Services never see a password: they verify the gateway's EdDSA tokens.
"""
