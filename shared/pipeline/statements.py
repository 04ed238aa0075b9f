"""Data-modifying statements and how a batch's statements become one: all but the last as
CTEs (``WITH w0 AS (INSERT ...), w1 AS (UPDATE ...) INSERT ...``), their parameters renumbered.
One round trip however many tables a batch touches, and atomic on its own.

Reads can go together as well (:func:`read_together`): one round trip for the records and the
remembered answers of a single write, read in one snapshot."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

__all__ = ["Read", "Write", "json_column", "json_rows", "read_together", "together"]

_PLACEHOLDER = re.compile(r"\$(\d+)")


@dataclass(frozen=True)
class Write:
    """One data-modifying statement (no RETURNING) with its own ``$1..$n`` parameters.

    ``name``: the name of its CTE in :func:`together`, for a statement whose rows (a ``SELECT``,
    or a ``RETURNING``) a later write of the same statement reads; unnamed ones are ``w<i>``."""

    sql: str
    args: tuple[Any, ...]
    name: str | None = None


def json_column(values: Sequence[Any]) -> str:
    """A column of a set statement as one parameter: its values as a JSON array (orjson, in C),
    read back with :func:`json_rows`. asyncpg encodes an array parameter element by element, each
    after two collection-ABC ``isinstance`` checks: 0.5–1.1 µs of the client's CPU per element,
    against about 0.05 µs for this and some 0.2 µs of PostgreSQL's for reading it back
    (docs/benchmarks.md). Exact for text (None: null), aware date-times (their offset and
    microseconds), dates, uuids, integers and booleans, each cast back in SQL."""
    return orjson.dumps(values, option=orjson.OPT_NAIVE_UTC).decode()


def json_rows(first: int, names: Sequence[str], alias: str) -> str:
    """SQL: the rows of the :func:`json_column` parameters ``$first, $first+1, ...``, one
    column of text each (cast it to its type), in the arrays' order: ``ROWS FROM
    (json_array_elements_text($1::text::json), ...) AS x(a, ...)``."""
    functions = ", ".join(
        f"json_array_elements_text(${i}::text::json)" for i in range(first, first + len(names))
    )
    return f"ROWS FROM ({functions}) AS {alias}({', '.join(names)})"


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
    ctes = ", ".join(
        f"{write.name or f'w{i}'} AS ({sql})"
        for i, (write, sql) in enumerate(zip(writes, parts[:-1], strict=False))
    )
    return f"WITH {ctes} {parts[-1]}", args


@dataclass(frozen=True)
class Read:
    """One ``SELECT`` with its own ``$1..$n`` parameters; ``columns``: the names of what it
    selects. Reads taken together share one snapshot: give :func:`read_together` none that
    locks (a lock waited for belongs before the reads that must see what its holder wrote)."""

    sql: str
    args: tuple[Any, ...]
    columns: tuple[str, ...]


async def read_together(
    conn: asyncpg.Connection, reads: Sequence[Read]
) -> list[list[dict[str, Any]]]:
    """The rows of each read (as dicts by column), read in one statement: one round trip, one
    snapshot. The reads are joined ``FULL JOIN ... ON false``: each row of the result is one
    read's row, the other reads' columns NULL, and every column keeps its type (a ``UNION`` would
    need the reads' columns to agree)."""
    parts: list[str] = []
    args: list[Any] = []
    for i, read in enumerate(reads):
        selected = ", ".join(f"q.{c} AS r{i}_{c}" for c in read.columns)
        parts.append(
            f"(SELECT true AS r{i}, {selected} FROM ({_shifted(read.sql, len(args))}) q) s{i}"
        )
        args.extend(read.args)
    rows = await conn.fetch(
        "SELECT * FROM " + " FULL JOIN ".join(parts[:1] + [f"{p} ON false" for p in parts[1:]]),
        *args,
    )
    out: list[list[dict[str, Any]]] = [[] for _ in reads]
    for row in rows:
        for i, read in enumerate(reads):
            if row[f"r{i}"]:
                out[i].append({c: row[f"r{i}_{c}"] for c in read.columns})
                break
    return out
