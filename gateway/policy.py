"""Who may call what: one rule per route of the public API, the gateway's own and the
services'. The gateway refuses any ``/api/v1`` request without a rule (404, or 405 when
the path is known under another method), and the tests read :data:`RULES` to check every
route x every role, and that every route the services publish has a rule here.

A rule names the least role allowed (``public`` for no credential at all), the rate
class charged (see :mod:`gateway.limits`) and the upstream that serves it (``None``: the
gateway itself). API keys carry scopes: ``read`` for GET/HEAD/OPTIONS, ``write`` for the
rest; ``api_keys=False`` routes need an interactive login (managing keys and passwords).

Matching: literal segments beat parameters. A path is matched against the most literal
templates that fit it (``/alerts/history`` before ``/alerts/{rule_id}``), and only those:
a method they lack is ``405`` with ``Allow`` listing their methods, never a fall-through
to a less literal template that happens to have the method. ``HEAD`` is served wherever
``GET`` is (and listed in ``Allow`` with it).

Services still check roles and ownership themselves: this table is the outer wall.

To add a route: add its rule here, in the block of its service.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Access = Literal["public", "viewer", "analyst", "admin"]
RateClass = Literal["public", "login", "read", "write"]

PREFIX = "/api/v1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Rule:
    method: str
    path: str  # template: /api/v1/stocks/{ticker}
    access: Access
    rate_class: RateClass
    upstream: str | None = None  # a service name; None = answered by the gateway
    api_keys: bool = True
    websocket: bool = False
    max_body_bytes: int | None = None  # instead of GATEWAY_MAX_BODY_BYTES (uploads)

    @property
    def scope(self) -> str:
        """The API-key scope this route needs."""
        return "read" if self.method in SAFE_METHODS else "write"


def _own(method: str, path: str, access: Access, rate: RateClass, **kw: bool) -> Rule:
    return Rule(method, PREFIX + path, access, rate, None, **kw)


def _svc(service: str, method: str, path: str, access: Access, **kw: bool | int) -> Rule:
    rate: RateClass = "read" if method in SAFE_METHODS else "write"
    return Rule(method, PREFIX + path, access, rate, service, **kw)  # type: ignore[arg-type]


RULES: tuple[Rule, ...] = (
    # --- gateway: identity ----------------------------------------------------------
    _own("POST", "/auth/token", "public", "login"),
    _own("POST", "/auth/refresh", "public", "public"),
    _own("POST", "/auth/logout", "public", "public"),
    _own("GET", "/auth/jwks", "public", "public"),
    _own("GET", "/users/me", "viewer", "read"),
    _own("PATCH", "/users/me", "viewer", "write", api_keys=False),
    _own("GET", "/users", "admin", "read"),
    _own("POST", "/users", "admin", "write"),
    _own("GET", "/users/{user_id}", "admin", "read"),
    _own("PATCH", "/users/{user_id}", "admin", "write"),
    _own("GET", "/api-keys", "viewer", "read"),
    _own("POST", "/api-keys", "viewer", "write", api_keys=False),
    _own("DELETE", "/api-keys/{key_id}", "viewer", "write", api_keys=False),
    # --- gateway: platform ----------------------------------------------------------
    _own("GET", "/health", "public", "public"),
    _own("GET", "/openapi.json", "public", "public"),
    # --- market -----------------------------------------------------------------------
    _svc("market", "GET", "/stocks", "viewer"),
    _svc("market", "GET", "/stocks/{ticker}", "viewer"),
    _svc("market", "GET", "/stocks/{ticker}/prices", "viewer"),
    _svc("market", "GET", "/stocks/{ticker}/analysis", "viewer"),
    _svc("market", "GET", "/market/overview", "viewer"),
    _svc("market", "GET", "/market/sectors", "viewer"),
    _svc("market", "GET", "/market/index", "viewer"),
    _svc("market", "GET", "/market/quotes", "viewer"),
    _svc("market", "GET", "/market/status", "viewer"),
    _svc("market", "POST", "/market/imports", "admin", max_body_bytes=64 * 1024 * 1024),
    # --- recommendations ------------------------------------------------------------
    _svc("recommendations", "GET", "/recommendations", "viewer"),
    _svc("recommendations", "GET", "/recommendations/history", "viewer"),
    _svc("recommendations", "GET", "/recommendations/ledger/verify", "viewer"),
    _svc("recommendations", "GET", "/recommendations/track-record", "viewer"),
    _svc("recommendations", "GET", "/recommendations/runs", "viewer"),
    _svc("recommendations", "POST", "/recommendations/runs", "analyst"),
    _svc("recommendations", "GET", "/recommendations/runs/{run_id}", "viewer"),
    _svc("recommendations", "GET", "/recommendations/{recommendation_id}", "viewer"),
    _svc("recommendations", "GET", "/recommendations/{recommendation_id}/replay", "viewer"),
    # --- portfolio --------------------------------------------------------------------
    _svc("portfolio", "GET", "/portfolio", "viewer"),
    _svc("portfolio", "POST", "/portfolio", "viewer"),
    _svc("portfolio", "POST", "/portfolio/positions", "viewer"),
    _svc("portfolio", "GET", "/portfolio/transactions", "viewer"),
    _svc("portfolio", "POST", "/portfolio/transactions", "viewer"),
    _svc("portfolio", "GET", "/portfolio/transactions/export", "viewer"),
    _svc(
        "portfolio",
        "POST",
        "/portfolio/transactions/import",
        "viewer",
        max_body_bytes=8 * 1024 * 1024,
    ),
    _svc("portfolio", "GET", "/portfolio/performance", "viewer"),
    _svc("portfolio", "PUT", "/portfolio/rebalance", "viewer"),
    _svc("portfolio", "GET", "/portfolio/xray", "viewer"),
    _svc("portfolio", "GET", "/portfolio/impact", "viewer"),
    _svc("portfolio", "GET", "/portfolios", "viewer"),
    _svc("portfolio", "GET", "/portfolios/{portfolio_id}", "viewer"),
    _svc("portfolio", "PATCH", "/portfolios/{portfolio_id}", "viewer"),
    _svc("portfolio", "POST", "/portfolios/{portfolio_id}/positions", "viewer"),
    _svc("portfolio", "GET", "/portfolios/{portfolio_id}/transactions", "viewer"),
    _svc("portfolio", "POST", "/portfolios/{portfolio_id}/transactions", "viewer"),
    _svc(
        "portfolio",
        "POST",
        "/portfolios/{portfolio_id}/transactions/{transaction_id}/reversal",
        "viewer",
    ),
    _svc("portfolio", "GET", "/portfolios/{portfolio_id}/transactions/export", "viewer"),
    _svc(
        "portfolio",
        "POST",
        "/portfolios/{portfolio_id}/transactions/import",
        "viewer",
        max_body_bytes=8 * 1024 * 1024,
    ),
    _svc("portfolio", "GET", "/portfolios/{portfolio_id}/performance", "viewer"),
    _svc("portfolio", "PUT", "/portfolios/{portfolio_id}/rebalance", "viewer"),
    _svc("portfolio", "GET", "/portfolios/{portfolio_id}/xray", "viewer"),
    _svc("portfolio", "GET", "/portfolios/{portfolio_id}/impact", "viewer"),
    _svc("portfolio", "GET", "/watchlists", "viewer"),
    _svc("portfolio", "POST", "/watchlists", "viewer"),
    _svc("portfolio", "GET", "/watchlists/{watchlist_id}", "viewer"),
    _svc("portfolio", "PATCH", "/watchlists/{watchlist_id}", "viewer"),
    _svc("portfolio", "DELETE", "/watchlists/{watchlist_id}", "viewer"),
    _svc("portfolio", "PUT", "/watchlists/{watchlist_id}/tickers", "viewer"),
    _svc("portfolio", "POST", "/watchlists/{watchlist_id}/tickers", "viewer"),
    _svc("portfolio", "DELETE", "/watchlists/{watchlist_id}/tickers/{ticker}", "viewer"),
    # --- realtime ---------------------------------------------------------------------
    _svc("realtime", "GET", "/alerts", "viewer"),
    _svc("realtime", "POST", "/alerts", "viewer"),
    _svc("realtime", "GET", "/alerts/history", "viewer"),
    _svc("realtime", "GET", "/alerts/{rule_id}", "viewer"),
    _svc("realtime", "PATCH", "/alerts/{rule_id}", "viewer"),
    _svc("realtime", "DELETE", "/alerts/{rule_id}", "viewer"),
    _svc("realtime", "GET", "/ws/prices", "viewer", websocket=True),
    _svc("realtime", "GET", "/ws/alerts", "viewer", websocket=True),
)

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


def _template_regex(template: str) -> re.Pattern[str]:
    pattern, last = "", 0
    for match in _PARAM.finditer(template):
        pattern += re.escape(template[last : match.start()])
        pattern += ".+" if match[2] else "[^/]+"
        last = match.end()
    return re.compile("^" + pattern + re.escape(template[last:]) + "$")


class NoRoute(Exception):
    """No rule for the path (404), or none for this method (405, ``allowed`` set)."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self.allowed = allowed


class Policy:
    """:data:`RULES`, indexed for a lookup that costs a dict access on static paths and
    a few regex matches on templated ones."""

    def __init__(self, rules: Iterable[Rule] = RULES) -> None:
        self.rules = tuple(rules)
        self._static: dict[tuple[str, str], Rule] = {}
        self._static_paths: dict[str, list[str]] = {}
        self._templated: dict[str, list[tuple[re.Pattern[str], Rule]]] = {}
        self._seen: dict[tuple[str, str], Rule] = {}  # templated paths matched recently
        seen: set[tuple[str, str, bool]] = set()
        for rule in self.rules:
            identity = (rule.method, rule.path, rule.websocket)
            if identity in seen:
                raise ValueError(f"two rules for {rule.method} {rule.path}")
            seen.add(identity)
            if "{" in rule.path:
                segment = _first_segment(rule.path)
                self._templated.setdefault(segment, []).append((_template_regex(rule.path), rule))
            else:
                self._static[(rule.method, rule.path)] = rule
                self._static_paths.setdefault(rule.path, []).append(rule.method)

    def match(self, method: str, path: str) -> Rule:
        """The rule for ``method path``; HEAD uses GET's. Raises :class:`NoRoute`."""
        lookup = "GET" if method == "HEAD" else method
        rule = self._static.get((lookup, path)) or self._seen.get((lookup, path))
        if rule is not None:
            return rule
        literal = self._static_paths.get(path)
        if literal is not None:  # a literal path wins over every template
            raise NoRoute(_allowed(literal))
        rule = self._match_templates(lookup, path)
        if len(self._seen) >= 4096:
            self._seen.clear()  # bounded: paths carry ids, so the set of them is not
        self._seen[(lookup, path)] = rule
        return rule

    def _match_templates(self, lookup: str, path: str) -> Rule:
        best: tuple[int, ...] | None = None
        fitting: list[Rule] = []
        for regex, candidate in self._templated.get(_first_segment(path), ()):
            if regex.match(path):
                key = _literal_key(candidate.path)
                if best is None or key > best:
                    best, fitting = key, [candidate]
                elif key == best:
                    fitting.append(candidate)
        for candidate in fitting:
            if candidate.method == lookup:
                return candidate
        raise NoRoute(_allowed([candidate.method for candidate in fitting]))


def _literal_key(template: str) -> tuple[int, ...]:
    """Per segment, 1 for a literal and 0 for a parameter: the greater key is the more
    literal template (compared from the left, so an earlier literal counts more)."""
    return tuple(0 if "{" in segment else 1 for segment in template.split("/"))


def _allowed(methods: Iterable[str]) -> tuple[str, ...]:
    allowed = set(methods)
    if "GET" in allowed:
        allowed.add("HEAD")
    return tuple(sorted(allowed))


def _first_segment(path: str) -> str:
    return path[len(PREFIX) + 1 :].split("/", 1)[0]
