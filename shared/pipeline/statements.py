"""Data-modifying statements and how a batch's statements become one: all but the last as
CTEs (``WITH w0 AS (INSERT ...), w1 AS (UPDATE ...) INSERT ...``), their parameters renumbered.
One round trip however many tables a batch touches, and atomic on its own."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Write", "together"]

_PLACEHOLDER = re.compile(r"\$(\d+)")


@dataclass(frozen=True)
class Write:
    """One data-modifying statement (no RETURNING) with its own ``$1..$n`` parameters."""

    sql: str
    args: tuple[Any, ...]


def _shifted(sql: str, offset: int) -> str:
    return _PLACEHOLDER.sub(lambda m: f"${int(m[1]) + offset}", sql)


def together(writes: Sequence[Write]) -> tuple[str, list[Any]]:
    """The writes as one statement: all but the last as CTEs, parameters renumbered."""
    parts: list[str] = []
    args: list[Any] = []
    for write in writes:
        offset = len(args)
        parts.append(_shifted(write.sql, offset))
        args.extend(write.args)
    if len(parts) == 1:
        return parts[0], args
    ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(parts[:-1]))
    return f"WITH {ctes} {parts[-1]}", args
