"""Errors of the realtime context."""

from shared.errors import ConflictError, NotFoundError, ValidationFailedError


class AlertRuleNotFoundError(NotFoundError):
    error_code = "ALERT_RULE_NOT_FOUND"


class AlertRuleQuotaError(ConflictError):
    error_code = "ALERT_RULE_QUOTA_EXCEEDED"


class InvalidAlertRuleError(ValidationFailedError):
    error_code = "INVALID_ALERT_RULE"


class WatchlistNotFoundError(NotFoundError):
    """Not the caller's watchlist, or one realtime has not heard of (yet)."""

    error_code = "WATCHLIST_NOT_FOUND"
