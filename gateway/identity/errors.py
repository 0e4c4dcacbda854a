"""Errors of the identity context (all subclasses of :class:`shared.errors.AppError`).

::

    AuthenticationError (401)
    +-- InvalidCredentialsError      INVALID_CREDENTIALS   wrong username or password
    +-- InvalidRefreshTokenError     INVALID_REFRESH_TOKEN unknown, expired or revoked
    |   +-- RefreshTokenReusedError  REFRESH_TOKEN_REUSED  a used token again: family revoked
    +-- InvalidApiKeyError           INVALID_API_KEY
    +-- AccountDisabledError         ACCOUNT_DISABLED      a credential of a disabled account
    PermissionDeniedError (403)
    +-- RoleExceedsOwnerError        ROLE_EXCEEDS_OWNER    a key wider than its owner
    NotFoundError (404)
    +-- UserNotFoundError            USER_NOT_FOUND
    +-- ApiKeyNotFoundError          API_KEY_NOT_FOUND
    ConflictError (409)
    +-- UsernameTakenError           USERNAME_TAKEN
    +-- UserDisabledError            USER_DISABLED         a key for a disabled account
    ValidationFailedError (422)
    +-- InvalidUsernameError         INVALID_USERNAME
    +-- InvalidPasswordError         INVALID_PASSWORD
    DependencyUnavailableError (503, Retry-After, details.dependency)
    +-- LoginUnavailableError        LOGIN_UNAVAILABLE     the login guard (Redis) is down
    ServiceUnavailableError (503)
    +-- PasswordWorkBusyError        LOGIN_BUSY            no password-check slot in time
"""

from typing import Any

from shared.errors import (
    AuthenticationError,
    ConflictError,
    DependencyUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    ValidationFailedError,
)


class InvalidCredentialsError(AuthenticationError):
    error_code = "INVALID_CREDENTIALS"
    default_message = "Incorrect username or password."


class InvalidRefreshTokenError(AuthenticationError):
    error_code = "INVALID_REFRESH_TOKEN"
    default_message = "The refresh token is invalid, expired or revoked."


class RefreshTokenReusedError(InvalidRefreshTokenError):
    error_code = "REFRESH_TOKEN_REUSED"
    default_message = (
        "This refresh token was already used; every session started from it is revoked."
    )


class InvalidApiKeyError(AuthenticationError):
    error_code = "INVALID_API_KEY"
    default_message = "The API key is invalid, expired or revoked."


class AccountDisabledError(AuthenticationError):
    error_code = "ACCOUNT_DISABLED"
    default_message = "This account is disabled; its credentials no longer work."


class RoleExceedsOwnerError(PermissionDeniedError):
    error_code = "ROLE_EXCEEDS_OWNER"
    default_message = "An API key cannot have a role above its owner's."


class UserNotFoundError(NotFoundError):
    error_code = "USER_NOT_FOUND"
    default_message = "No such user."


class ApiKeyNotFoundError(NotFoundError):
    error_code = "API_KEY_NOT_FOUND"
    default_message = "No such API key."


class UsernameTakenError(ConflictError):
    error_code = "USERNAME_TAKEN"


class UserDisabledError(ConflictError):
    error_code = "USER_DISABLED"
    default_message = "The user is disabled: enable them first."


class InvalidUsernameError(ValidationFailedError):
    error_code = "INVALID_USERNAME"
    default_message = "A username is 3-64 letters, digits, '.', '_' or '-'."


class InvalidPasswordError(ValidationFailedError):
    error_code = "INVALID_PASSWORD"
    default_message = "A password has 8 to 1024 characters."


class PasswordWorkBusyError(ServiceUnavailableError):
    error_code = "LOGIN_BUSY"
    default_message = "Too many password checks are waiting; try again shortly."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": "2"})
        super().__init__(message, **kwargs)


class LoginUnavailableError(DependencyUnavailableError):
    error_code = "LOGIN_UNAVAILABLE"
    default_message = "Logging in is temporarily unavailable; try again shortly."

    def __init__(self, message: str | None = None) -> None:
        # Failed logins are counted in Redis; without it they cannot be limited.
        super().__init__(message, dependency="redis")
