"""End-of-day providers the scheduled sync fetches from (docs/market.md, "Scheduled sync").

Each adapter turns a provider's documented answers into :class:`SessionData` -- raw bars
(as traded: adjustment is ours), splits and cash dividends -- for a range of sessions:

- :mod:`.polygon`: the grouped daily bars (the whole market in one call a session), the
  splits and the dividends reference endpoints;
- :mod:`.tiingo`: one security's daily prices a call (``divCash``, ``splitFactor`` give the
  actions);
- :mod:`.alphavantage`: ``TIME_SERIES_DAILY_ADJUSTED`` (with splits and dividends) or
  ``TIME_SERIES_DAILY`` (bars only, the free function).

Every call goes through :class:`services.market.importers.providers.ProviderClient` (a
bound on requests in flight, retries on 429/5xx honouring ``Retry-After``, throttling sent
as a 200 detected and retried); :func:`make_provider` builds the configured one.
"""

from services.market.providers.base import (
    ProviderAnswerError,
    ProviderDividend,
    ProviderSplit,
    SessionData,
    SyncProvider,
    make_provider,
    redact_secret,
)

__all__ = [
    "ProviderAnswerError",
    "ProviderDividend",
    "ProviderSplit",
    "SessionData",
    "SyncProvider",
    "make_provider",
    "redact_secret",
]
