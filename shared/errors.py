"""Errors the service layers raise; the HTTP layer maps them to 4xx answers."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DOMAIN_ERRORS", "ConflictError", "FieldError", "ForbiddenError", "NotFoundError"]


class FieldError(Exception):
    """Validation failed on named fields (422): e.g. an unknown neighbourhood."""

    def __init__(self, details: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in details))
        self.details = list(details)

    @classmethod
    def raise_if(cls, problems: Sequence[tuple[str, str]]) -> None:
        """Raise for the problems a rule found, if it found any."""
        if problems:
            raise cls(problems)


class ConflictError(Exception):
    """The write contradicts what is stored (409); ``allowed`` names what would be accepted."""

    def __init__(self, message: str, allowed: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.allowed = list(allowed) if allowed is not None else None


class NotFoundError(Exception):
    """No such record of the caller's organisation (404). Another organisation's records are
    reported the same way, so that their existence is not revealed."""


class ForbiddenError(Exception):
    """The caller may see the record but not make this change (403); the message names who may."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# What a decision may refuse with; the HTTP layer maps each to its status (422, 409, 403, 404).
DOMAIN_ERRORS = (FieldError, ConflictError, ForbiddenError, NotFoundError)
