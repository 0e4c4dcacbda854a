"""Demo data: the simulated universe (nothing here is real market data; every security is
marked ``data_source = 'simulated'``).

``bourse up`` calls :func:`seed_demo` once the parts answer ``/ready``. By then the market
service has usually begun loading the full universe itself (``MARKET_UNIVERSE_*``: 6,000
securities x 10 years by default, into an empty database), so ``seed_demo`` waits for that
load and prints its progress. When nothing is loading and the database is empty (the test
suite seeds before it starts the services), it loads a small universe itself, sized by
``MARKET_DEMO_UNIVERSE_SIZE`` (default 150) and ``MARKET_DEMO_UNIVERSE_YEARS`` (default 3).
Either way it is safe to run again: data already there is kept.
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.market.repository import loads
from services.market.service import loading

DEMO_SEED = 20_240_101


class DemoSettings(BaseSettings):
    """``MARKET_DEMO_UNIVERSE_SIZE`` / ``_YEARS``: the universe seed_demo loads itself."""

    model_config = SettingsConfigDict(env_prefix="MARKET_DEMO_", extra="ignore", frozen=True)

    universe_size: int = Field(default=150, ge=13, le=20_000)
    universe_years: int = Field(default=3, ge=2, le=30)


def _say(message: str) -> None:
    sys.stdout.write(f"market: {message}\n")
    sys.stdout.flush()


async def seed_demo(conn: asyncpg.Connection, *, wait_timeout: float = 1800.0) -> None:
    """Make sure a simulated universe is loaded (see the module docstring)."""
    deadline = time.monotonic() + wait_timeout
    last_line = ""
    while True:
        load = await loads.latest(conn)
        if load is not None and load.state == "loading":
            if await loads.try_lock(conn):
                # Nobody holds the loader's lock: that load died. Load again ourselves.
                await loads.unlock(conn)
                break
            line = (
                f"loading the simulated universe: {load.phase},"
                f" {load.rows_loaded:,}/{load.rows_total:,} daily bars"
            )
            if line != last_line:
                _say(line)
                last_line = line
            if time.monotonic() > deadline:
                _say("still loading; see `bourse logs market`")
                return
            await asyncio.sleep(2.0)
            continue
        if await loading.universe_present(conn):
            if last_line:
                _say("simulated universe loaded")
            return
        break
    settings = DemoSettings()
    spec = loading.universe_spec(settings.universe_size, settings.universe_years, DEMO_SEED)
    await loading.load_universe_on(conn, spec, report=_say)
