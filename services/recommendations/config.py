"""Settings of the recommendations service (``RECOMMENDATIONS_*``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RecommendationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDATIONS_", extra="ignore", frozen=True)

    port: int = 8002

    # Runs: after each market.eod.completed, on POST /runs, and once at start-up when the
    # latest session with data has no run (off: only events and requests start runs).
    catch_up_run: bool = True
    # Years of month-ends the walk-forward backtest fills (hypothetical runs) after the
    # start-up catch-up, where the stored history allows; 0: no backfill.
    backfill_years: int = Field(default=10, ge=0, le=30)
    # Seconds between attempts while market (its stream, its replies) is not there yet.
    run_retry_seconds: float = Field(default=30.0, gt=0)
    # market.rpc.closes: tickers per request chain, and chains in flight at once.
    history_chunk: int = Field(default=500, ge=1, le=10_000)
    history_concurrency: int = Field(default=4, ge=1, le=32)
    history_timeout_seconds: float = Field(default=15.0, gt=0)
