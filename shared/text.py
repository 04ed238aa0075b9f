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
    for item in value if isinstance(value, list | tuple) else (value,):
        if not isinstance(item, str):
            continue
        if "\x00" in item:
            raise PydanticCustomError(
                "nul_character", "must not contain the NUL character (\\u0000)"
            )
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "invalid_unicode", "must be valid Unicode text (a lone surrogate is not)"
            ) from None
    return value


class StorableText(BaseModel):
    """Base of request models: every string field, and every string in a list field, is text
    PostgreSQL can store. Nested models check their own fields."""

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return refuse_unstorable(value)
