"""A table of a service's records, read set-wise and written set-based, for both services.

A record is a frozen dataclass whose fields are the table's columns (a field may name its column
differently); the types of the statements' parameters follow from the fields' types. A batch
loads the records it needs with one statement per table (``JOIN unnest(...)`` on the key, locked
in key order where it will change them) and writes each table with one ``INSERT ... SELECT FROM
ROWS FROM (...)`` and one ``UPDATE ... FROM ROWS FROM (...)`` over one JSON array per column,
rows in key order, so that two batches that lock or write the same keys meet them in the same
order.
"""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg
import orjson

from shared.pipeline.statements import Read, Write, json_column, json_rows

__all__ = ["Table"]

R = TypeVar("R")

# The PostgreSQL type of a parameter array's elements, by the field's Python type.
_TYPES: dict[Any, str] = {
    str: "text",
    int: "bigint",
    bool: "bool",
    datetime: "timestamptz",
    date: "date",
    UUID: "uuid",
}


@dataclasses.dataclass(frozen=True)
class _Column:
    name: str  # in the table
    field: str  # in the record
    type: str  # of the parameter's elements
    listed: bool  # a text[] column (a tuple of strings in the record)

    def select(self, alias: str) -> str:
        """SQL: this column's value in a row of ``json_rows`` (text) as its own type. A text[]
        travels as one JSON array per row (the rows' arrays differ in length)."""
        value = f"{alias}.{self.name}"
        if self.listed:
            return f"ARRAY(SELECT jsonb_array_elements_text({value}::jsonb))"
        return value if self.type == "text" else f"{value}::{self.type}"

    def value(self, record: Any) -> Any:
        value = getattr(record, self.field)
        return orjson.dumps(value).decode() if self.listed else value


def _column(field: dataclasses.Field[Any], hint: Any, names: Mapping[str, str]) -> _Column:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kind = next(o for o in options if o is not type(None))
    listed = typing.get_origin(kind) is tuple
    return _Column(
        names.get(field.name, field.name), field.name, "text" if listed else _TYPES[kind], listed
    )


class Table(Generic[R]):
    """``name``: schema-qualified; ``key``: the columns that identify a record; ``columns``:
    field -> column, for fields not named like their column."""

    def __init__(
        self,
        name: str,
        record: type[R],
        key: Sequence[str],
        columns: Mapping[str, str] | None = None,
    ) -> None:
        hints = typing.get_type_hints(record)
        self.name = name
        self.record = record
        self.columns = [
            _column(f, hints[f.name], columns or {})
            for f in dataclasses.fields(record)  # type: ignore[arg-type]
        ]
        by_name = {c.name: c for c in self.columns}
        self.key = [by_name[k] for k in key]
        # A record's key, to sort rows by (one C call per record rather than a generator).
        self._key_of = operator.attrgetter(*(c.field for c in self.key))

    def _params(self, columns: Sequence[_Column]) -> str:
        return ", ".join(f"${i}::{c.type}[]" for i, c in enumerate(columns, start=1))

    def _arrays(self, columns: Sequence[_Column], records: Sequence[R]) -> tuple[str, ...]:
        ordered = sorted(records, key=self._key_of)
        return tuple(json_column([c.value(r) for r in ordered]) for c in columns)

    def of(self, row: Mapping[str, Any]) -> R:
        return self.record(
            **{c.field: tuple(row[c.name]) if c.listed else row[c.name] for c in self.columns}
        )

    def read(self, keys: Collection[tuple[Any, ...]], *, lock: bool = False) -> Read:
        """The statement that reads the records with these keys (at least one), in key order."""
        ordered = sorted(set(keys))
        names = [c.name for c in self.key]
        return Read(
            f"SELECT {', '.join(f't.{c.name}' for c in self.columns)} FROM {self.name} t "
            f"JOIN unnest({self._params(self.key)}) AS k({', '.join(names)}) "
            f"ON {' AND '.join(f't.{n} = k.{n}' for n in names)} "
            f"ORDER BY {', '.join(f't.{n}' for n in names)}" + (" FOR UPDATE OF t" if lock else ""),
            tuple([k[i] for k in ordered] for i in range(len(names))),
            tuple(c.name for c in self.columns),
        )

    def found(self, rows: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], R]:
        """The records of rows that :meth:`read` returned, by key."""
        names = [c.name for c in self.key]
        return {tuple(r[n] for n in names): self.of(r) for r in rows}

    async def load(
        self, conn: asyncpg.Connection, keys: Collection[tuple[Any, ...]], *, lock: bool = False
    ) -> dict[tuple[Any, ...], R]:
        """The records with these keys that exist; ``lock``: until the transaction ends."""
        if not keys:
            return {}
        read = self.read(keys, lock=lock)
        return self.found(await conn.fetch(read.sql, *read.args))

    def insert(self, records: Sequence[R]) -> list[Write]:
        if not records:
            return []
        names = ", ".join(c.name for c in self.columns)
        return [
            Write(
                f"INSERT INTO {self.name} ({names}) "
                f"SELECT {', '.join(c.select('x') for c in self.columns)} "
                f"FROM {json_rows(1, [c.name for c in self.columns], 'x')}",
                self._arrays(self.columns, records),
            )
        ]

    def update(self, records: Sequence[R], fields: Sequence[str]) -> list[Write]:
        """Set these fields' columns of existing records (matched on the key)."""
        if not records:
            return []
        changing = [c for c in self.columns if c.field in fields and c not in self.key]
        columns = [*self.key, *changing]
        assignments = ", ".join(c.name + " = " + c.select("x") for c in changing)
        return [
            Write(
                f"UPDATE {self.name} AS t SET {assignments} "
                f"FROM {json_rows(1, [c.name for c in columns], 'x')} "
                f"WHERE {' AND '.join(f't.{c.name} = ' + c.select('x') for c in self.key)}",
                self._arrays(columns, records),
            )
        ]
