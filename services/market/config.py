"""Settings of the market service (``MARKET_*``)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class MarketSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MARKET_", extra="ignore", frozen=True)

    port: int = 8001
