"""``python -m services.recommendations``: serve the recommendations service."""

from services.recommendations.app import NAME, create_app
from services.recommendations.config import RecommendationsSettings
from shared.runtime import serve

if __name__ == "__main__":
    serve(NAME, RecommendationsSettings, create_app)
