"""``python -m services.realtime``: serve the realtime service."""

from services.realtime.server import serve

if __name__ == "__main__":
    serve()
