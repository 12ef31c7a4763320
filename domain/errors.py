"""Domain errors: why a command was refused, in words a person can act on."""
from __future__ import annotations


class DomainError(Exception):
    """A command was refused by a rule of the domain."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """A field breaks a rule (too long, wrong format, unknown reference)."""


class BadRequest(DomainError):
    """The request makes no sense as asked (following oneself)."""


class NotFound(DomainError):
    """The thing the command is about does not exist (or no longer)."""


class NotAllowed(DomainError):
    """The actor may not do this to that thing."""


class Conflict(DomainError):
    """The command collides with existing state (username taken)."""


class NotAuthenticated(DomainError):
    """Credentials are missing or wrong."""
