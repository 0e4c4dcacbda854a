"""Settings of the portfolio service (``PORTFOLIO_*``)."""

from decimal import Decimal

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
    # The risk x-ray (docs/portfolio.md, "Risk x-ray"): default concentration limits (a
    # request may give its own), and the calendar days of daily history its risk reads.
    xray_max_position_weight: Decimal = Field(default=Decimal("0.10"), gt=0, le=1)
    xray_max_sector_weight: Decimal = Field(default=Decimal("0.30"), gt=0, le=1)
    xray_history_days: int = Field(default=365, ge=30, le=3650)
    # How long the x-ray, a recommendations-driven rebalance and the impact preview wait
    # for recommendations.rpc.latest before answering without it (or 503 where it is needed).
    recommendations_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # Warm the optimiser (import skfolio, solve a tiny problem) in a worker thread after
    # start-up, so a user's first optimised proposal is not seconds slower than the next.
    optimiser_warm_up: bool = True
