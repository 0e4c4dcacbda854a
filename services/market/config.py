"""Settings of the market service (``MARKET_*``)."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class MarketSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MARKET_", extra="ignore", frozen=True)

    port: int = 8001
    # The simulated universe loaded at start-up into an empty database (see docs/market.md).
    universe_autoload: bool = True
    universe_size: int = Field(default=6000, ge=1, le=20_000)
    universe_years: int = Field(default=10, ge=1, le=30)
    universe_seed: int = 20_240_101
    # The live feed of simulated ticks: "always" (demo), "schedule" (NYSE hours), "off".
    feed_mode: Literal["always", "schedule", "off"] = "always"
    feed_rate: float = Field(default=2000.0, ge=1.0, le=100_000.0)  # ticks per second in total
    feed_interval: float = Field(default=0.05, gt=0.0, le=5.0)  # seconds between tick batches
    feed_flush_interval: float = Field(default=1.0, gt=0.0, le=60.0)  # latest_quotes writes
    # End-of-day data from a provider (none configured by default).
    provider: Literal["none", "polygon"] = "none"
    provider_api_key: SecretStr | None = None
    provider_base_url: str = "https://api.polygon.io"
    provider_concurrency: int = Field(default=4, ge=1, le=64)
    # Token verification results kept per process (signature checked once per token).
    token_cache_size: int = Field(default=10_000, ge=0)
    # The model's view behind include_ml: the stream recommendations publishes
    # ``recommendations.run.completed`` on (declared by recommendations), and how long to
    # wait before asking again when recommendations does not answer (doubled, up to 60 s).
    recommendation_stream: str = "RECOMMENDATIONS"
    model_view_retry_seconds: float = Field(default=5.0, gt=0.0, le=300.0)
