"""The five parts of the platform and how each is started and configured."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    name: str  # short name used on the command line and in logs
    module: str  # ``python -m <module>`` serves it
    env_prefix: str  # every setting is read from ``<PREFIX>_<FIELD>``
    schema: str  # the PostgreSQL schema it owns
    db_role: str  # the PostgreSQL role it connects as (owner of its schema)
    default_port: int
    migrations_package: str  # where its versioned SQL files live

    @property
    def is_gateway(self) -> bool:
        return self.name == "gateway"


def _part(name: str, module: str, schema: str, port: int) -> Part:
    return Part(
        name=name,
        module=module,
        env_prefix=name.upper(),
        schema=schema,
        db_role=f"bourse_{name}",
        default_port=port,
        migrations_package=f"{module}.migrations",
    )


GATEWAY = _part("gateway", "gateway", "identity", 8000)
MARKET = _part("market", "services.market", "market", 8001)
RECOMMENDATIONS = _part("recommendations", "services.recommendations", "recommendations", 8002)
PORTFOLIO = _part("portfolio", "services.portfolio", "portfolio", 8003)
REALTIME = _part("realtime", "services.realtime", "realtime", 8004)

SERVICES: tuple[Part, ...] = (MARKET, RECOMMENDATIONS, PORTFOLIO, REALTIME)
PARTS: tuple[Part, ...] = (GATEWAY, *SERVICES)
BY_NAME = {part.name: part for part in PARTS}
