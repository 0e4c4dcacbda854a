"""Settings of the portfolio service (``PORTFOLIO_*``)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class PortfolioSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PORTFOLIO_", extra="ignore", frozen=True)

    port: int = 8003
