"""``python -m services.realtime``: serve the realtime service."""

from services.realtime.app import NAME, create_app
from services.realtime.config import RealtimeSettings
from shared.runtime import serve

if __name__ == "__main__":
    serve(NAME, RealtimeSettings, create_app)
