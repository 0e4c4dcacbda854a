"""A small demo universe for a fresh platform: a dozen simulated securities with quotes.

Every row is marked ``data_source = 'simulated'``: nothing here is real market data.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import asyncpg

from services.market import repository
from services.market.domain import Quote, Security

DATA_SOURCE = "simulated"

_UNIVERSE = (
    ("ACME", "Acme Widgets Inc.", "NYSE", "Industrials", "Machinery"),
    ("BRGT", "Bright Semiconductor Corp.", "NASDAQ", "Information Technology", "Semiconductors"),
    ("CLDX", "Cloudex Software Ltd.", "NASDAQ", "Information Technology", "Software"),
    ("DLTA", "Delta Regional Bank", "NYSE", "Financials", "Banks"),
    ("EVRG", "Evergreen Power Co.", "NYSE", "Utilities", "Electric Utilities"),
    ("FRSH", "Fresh Harvest Foods", "NYSE", "Consumer Staples", "Food Products"),
    ("GLXY", "Galaxy Media Group", "NASDAQ", "Communication Services", "Media"),
    ("HLTH", "Helix Therapeutics", "NASDAQ", "Health Care", "Biotechnology"),
    ("IRON", "Ironclad Materials", "NYSE", "Materials", "Metals & Mining"),
    ("JETS", "Jetstream Airlines", "NYSE", "Industrials", "Passenger Airlines"),
    ("KRFT", "Kraftwerk Retail", "NYSE", "Consumer Discretionary", "Broadline Retail"),
    ("LAND.B", "Landmark Realty Class B", "NYSE", "Real Estate", "Residential REITs"),
    ("MOIL", "Meridian Oil & Gas", "NYSE", "Energy", "Oil, Gas & Consumable Fuels"),
)


def demo_universe(seed: int = 7) -> list[tuple[Security, Quote]]:
    """The demo securities and a quote for each, the same for a given seed."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    result = []
    for ticker, name, exchange, sector, industry in _UNIVERSE:
        previous = round(rng.uniform(10, 400), 2)
        price = round(previous * (1 + rng.gauss(0, 0.015)), 2)
        security = Security(
            ticker=ticker,
            name=name,
            exchange=exchange,
            sector=sector,
            industry=industry,
            currency="USD",
            status="listed",
            shares_outstanding=rng.randrange(50, 5_000) * 1_000_000,
            data_source=DATA_SOURCE,
        )
        quote = Quote(ticker, price, previous, rng.randrange(100_000, 20_000_000), now)
        result.append((security, quote))
    return result


async def seed_demo(conn: asyncpg.Connection) -> None:
    """Insert (or refresh) the demo universe. Safe to run again."""
    async with conn.transaction():
        for security, quote in demo_universe():
            await repository.upsert_security(conn, security)
            await repository.upsert_quote(conn, quote)
