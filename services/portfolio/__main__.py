"""``python -m services.portfolio``: serve the portfolio service."""

from services.portfolio.app import NAME, create_app
from services.portfolio.config import PortfolioSettings
from shared.runtime import serve

if __name__ == "__main__":
    serve(NAME, PortfolioSettings, create_app)
