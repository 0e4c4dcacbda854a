"""``python -m gateway``: serve the gateway."""

from gateway.app import NAME, create_app, http_protocol
from gateway.config import GatewaySettings
from shared.runtime import serve

if __name__ == "__main__":
    serve(NAME, GatewaySettings, create_app, http_protocol)
