"""Watchlists: a user's named, ordered lists of tickers, answered with market's live quotes
and each ticker's latest recommendation, and announced to other contexts (realtime's alert
rules can target one) through the outbox. One folder: routes, schemas, service, domain,
repository, errors, as the portfolio's own modules are laid out."""
