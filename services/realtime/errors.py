"""Errors of the realtime context."""

from shared.errors import ConflictError, NotFoundError


class AlertRuleNotFoundError(NotFoundError):
    error_code = "ALERT_RULE_NOT_FOUND"


class AlertRuleQuotaError(ConflictError):
    error_code = "ALERT_RULE_QUOTA_EXCEEDED"
