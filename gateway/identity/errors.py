"""Errors of the identity context."""

from shared.errors import AuthenticationError, ConflictError, ValidationFailedError


class InvalidCredentialsError(AuthenticationError):
    error_code = "INVALID_CREDENTIALS"
    default_message = "Incorrect username or password."


class UsernameTakenError(ConflictError):
    error_code = "USERNAME_TAKEN"


class InvalidUsernameError(ValidationFailedError):
    error_code = "INVALID_USERNAME"
    default_message = "A username is 3-64 letters, digits, '.', '_' or '-'."
