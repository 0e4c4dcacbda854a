"""Settings of the portfolio service (``PORTFOLIO_*``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class PortfolioSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PORTFOLIO_", extra="ignore", frozen=True)

    port: int = 8003
    # How long a valuation waits for market's quotes before answering without prices.
    market_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # How long one page of daily history (for performance) may take.
    market_history_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Portfolios whose latest ledger state is kept in memory (services/portfolio/states.py).
    ledger_states_capacity: int = Field(default=10_000, ge=1)
