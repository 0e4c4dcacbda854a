"""``python -m services.market``: serve the market service."""

from services.market.app import NAME, create_app
from services.market.config import MarketSettings
from shared.runtime import serve

if __name__ == "__main__":
    serve(NAME, MarketSettings, create_app)
