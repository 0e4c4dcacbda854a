"""Settings of the recommendations service (``RECOMMENDATIONS_*``)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RecommendationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDATIONS_", extra="ignore", frozen=True)

    port: int = 8002
