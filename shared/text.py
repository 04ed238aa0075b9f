"""Text that PostgreSQL can store.

A ``text`` (or ``jsonb``) value cannot hold U+0000 (NUL), and a lone UTF-16 surrogate (which a
JSON ``\\ud800`` escape produces) cannot be encoded as UTF-8. JSON carries both without
complaint, so a request with one would fail in the database with a 500; request models that
derive from :class:`StorableText` refuse it as a 422 that names the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator
from pydantic_core import PydanticCustomError

__all__ = ["StorableText", "refuse_unstorable"]


def refuse_unstorable(value: Any) -> Any:
    """``value`` unchanged, if it is (or, for a list, holds) only storable text."""
    # Every field of every request item comes through here (ten calls for an attendance item),
    # so the common case is cut short: ASCII text without NUL can hold neither NUL nor a lone
    # surrogate (both C-speed tests), and a value that is not text is passed at once.
    if type(value) is str:
        if value.isascii() and "\x00" not in value:
            return value
        _refuse_text(value)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str):
                _refuse_text(item)
    elif isinstance(value, str):
        _refuse_text(value)
    return value


def _refuse_text(text: str) -> None:
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "must not contain the NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "invalid_unicode", "must be valid Unicode text (a lone surrogate is not)"
        ) from None


class StorableText(BaseModel):
    """Base of request models: every string field, and every string in a list field, is text
    PostgreSQL can store. Nested models check their own fields."""

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return refuse_unstorable(value)
