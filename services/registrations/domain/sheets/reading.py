"""Read an uploaded file into a grid of cells, refusing what a hostile or broken file holds.

XLSX is read with openpyxl (read-only, formulas kept as formulas so that they can be refused;
with defusedxml installed, openpyxl parses the package's XML through it). Before openpyxl sees
the package, the ZIP directory is checked: macros, external links, encrypted parts and an
unpacked size beyond the limit (a zip bomb) are refused without unpacking anything. The
declared sizes can be trusted for that: Python's zipfile never inflates a member beyond its
declared size.

CSV is UTF-8 (with or without the byte-order mark Excel writes for "CSV UTF-8"), separated by
`;` (what Dutch Excel writes), `,` or a tab, chosen by which one splits the header row into known
column names.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal

from services.registrations.domain.sheets.messages import Problem

__all__ = ["Cell", "Limits", "SheetError", "Table", "read_table"]

Cell = str | int | float | bool | datetime | date | time | None
FileFormat = Literal["xlsx", "csv"]

XLSX_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, and every password-protected workbook
REFUSED_EXTENSIONS = {".xlsm", ".xltm", ".xlam", ".xlsb", ".xls", ".ods", ".numbers"}
MACRO_EXTENSIONS = {".xlsm", ".xltm", ".xlam"}
MAX_COLUMNS = 40  # the templates have 7; more is a wrong file, read no further than this
MAX_ZIP_MEMBERS = 500
EMPTY_ROWS_FACTOR = 10  # rows scanned (empty ones included) per row allowed


@dataclass(frozen=True)
class Limits:
    """How much an upload may hold (settings: ``VERBINDING_UPLOAD_*``)."""

    max_bytes: int = 1_000_000
    max_unpacked_bytes: int = 20_000_000
    max_rows: int = 2000


@dataclass(frozen=True)
class Table:
    """A file's cells: ``rows`` holds (row number as the spreadsheet shows it, cells); the first
    is the header row. Fully empty rows are left out."""

    format: FileFormat
    rows: list[tuple[int, list[Cell]]]
    epoch: datetime | None = None  # an XLSX workbook's date system (1900 or 1904)
    problems: list[Problem] = field(default_factory=list)  # cells refused while reading


class SheetError(Exception):
    """The file cannot be read at all: nothing in it is used."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.code for p in problems))
        self.problems = problems


def _refuse(code: str, **params: Any) -> SheetError:
    return SheetError([Problem(None, None, code, params)])


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:g} MB"


def read_table(data: bytes, filename: str | None, limits: Limits) -> Table:
    """The cells of an uploaded XLSX or CSV file. Raises :class:`SheetError` when the file as a
    whole is refused; cells refused one by one (formulas) are in ``Table.problems``."""
    if not data:
        raise _refuse("file_empty")
    if len(data) > limits.max_bytes:
        raise _refuse("file_too_large", limit=_megabytes(limits.max_bytes))
    ext = "." + filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if ext in MACRO_EXTENSIONS:
        raise _refuse("macros")
    if ext in REFUSED_EXTENSIONS and not data.startswith(XLSX_MAGIC):
        raise _refuse("old_excel" if data.startswith(OLE2_MAGIC) else "unsupported_type", ext=ext)
    if ext in REFUSED_EXTENSIONS:
        raise _refuse("unsupported_type", ext=ext)
    if data.startswith(OLE2_MAGIC):
        raise _refuse("old_excel")
    if data.startswith(XLSX_MAGIC):
        return _read_xlsx(data, limits)
    return _read_csv(data, limits)


# ------------------------------------------------------------------------------------- XLSX


def _check_package(archive: zipfile.ZipFile, limits: Limits) -> None:
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise _refuse("unreadable")
    names = [m.filename.lower() for m in members]
    if any(n.endswith("vbaproject.bin") or (n.endswith(".bin") and "vba" in n) for n in names):
        raise _refuse("macros")
    if any(m.flag_bits & 0x1 for m in members):  # an encrypted member
        raise _refuse("old_excel")
    if sum(m.file_size for m in members) > limits.max_unpacked_bytes:
        raise _refuse("zip_bomb", limit=_megabytes(limits.max_unpacked_bytes))
    if any(n.startswith("xl/externallinks/") for n in names):
        raise _refuse("external_links")
    try:
        content_types = archive.read("[Content_Types].xml")
    except KeyError:
        raise _refuse("unreadable") from None
    if b"macroEnabled" in content_types or b"vbaProject" in content_types:
        raise _refuse("macros")


def _is_external(formula: str) -> bool:
    # An external reference names another workbook: `[1]Sheet1!A1` once Excel has indexed its
    # links, or `'C:\path\[book.xlsx]Sheet1'!A1` / `'https://...'` as typed.
    return "[" in formula or "://" in formula or ":\\" in formula


def _read_xlsx(data: bytes, limits: Limits) -> Table:
    from openpyxl import load_workbook  # imported here: CSV uploads and templates need less
    from openpyxl.cell.cell import ERROR_CODES
    from openpyxl.utils import get_column_letter

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise _refuse("unreadable") from None
    with archive:
        _check_package(archive, limits)
    try:
        workbook = load_workbook(
            io.BytesIO(data), read_only=True, data_only=False, keep_links=False, keep_vba=False
        )
    except Exception:  # openpyxl raises many kinds on a damaged package; all mean "unreadable"
        raise _refuse("unreadable") from None
    try:
        if not workbook.worksheets:
            raise _refuse("no_rows")
        sheet = workbook.worksheets[0]
        rows: list[tuple[int, list[Cell]]] = []
        problems: list[Problem] = []
        scanned_limit = limits.max_rows + 1  # data rows plus the header row
        try:
            for number, cells in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS), start=1):
                # Empty rows cost little, but a sheet may claim a cell a million rows down.
                if number > EMPTY_ROWS_FACTOR * scanned_limit:
                    raise _refuse("too_many_rows", limit=limits.max_rows)
                values: list[Cell] = []
                for index, cell in enumerate(cells, start=1):
                    value = getattr(cell, "value", None)
                    kind = getattr(cell, "data_type", None)
                    if kind == "e":
                        # An error value pasted as a value (#DIV/0!, #N/A): never data, even
                        # where it would pass a column's rule (a participant number has a digit).
                        problems.append(
                            Problem(
                                number,
                                None,
                                "excel_error",
                                {
                                    "cell": f"{get_column_letter(index)}{number}",
                                    "position": index,
                                    # Only Excel's own codes are echoed, never a cell's text.
                                    "value": str(value) if value in ERROR_CODES else "#?",
                                },
                            )
                        )
                        value = None
                    if kind == "f":
                        formula = str(value)
                        problems.append(
                            Problem(
                                number,
                                None,
                                "formula_external" if _is_external(formula) else "formula",
                                # `position`: the parser names the column it falls in.
                                {"cell": f"{get_column_letter(index)}{number}", "position": index},
                            )
                        )
                        value = None
                    values.append(_xlsx_value(value))
                while values and values[-1] is None:
                    values.pop()
                if not values:
                    continue
                rows.append((number, values))
                if len(rows) > scanned_limit:
                    raise _refuse("too_many_rows", limit=limits.max_rows)
        except SheetError:
            raise
        except Exception:  # a damaged sheet part fails only while it is read
            raise _refuse("unreadable") from None
        return Table("xlsx", rows, epoch=workbook.epoch, problems=problems)
    finally:
        workbook.close()


def _xlsx_value(value: Any) -> Cell:
    if value is None or isinstance(value, str | int | float | bool | datetime | date | time):
        if isinstance(value, str) and not value.strip():
            return None
        return value  # type: ignore[no-any-return]
    return str(value)  # a timedelta (a duration format): "10:15:00", read as a time of day


# -------------------------------------------------------------------------------------- CSV


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's "Unicode text" (UTF-16 with a byte-order mark, tab separated).
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise _refuse("encoding", line=1) from None
    else:
        data = data.removeprefix(b"\xef\xbb\xbf")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _refuse("encoding", line=data[: exc.start].count(b"\n") + 1) from None
    # Also after UTF-16: UTF-32's byte-order mark starts like UTF-16's, and leaves NULs.
    if "\x00" in text:
        raise _refuse("binary", line=text[: text.index("\x00")].count("\n") + 1)
    return text


def _delimiter(first_line: str, known_headers: set[str]) -> str:
    """The separator that splits the header row into the most known column names (ties: `;`,
    what Dutch Excel writes)."""

    def score(delimiter: str) -> int:
        cells = next(csv.reader([first_line], delimiter=delimiter), [])
        return sum(1 for c in cells if _header_key(c) in known_headers)

    return max((";", ",", "\t"), key=score)


def _header_key(value: str) -> str:
    return " ".join(value.replace("\ufeff", "").split()).casefold()


def _read_csv(data: bytes, limits: Limits) -> Table:
    from services.registrations.domain.sheets.columns import SHEETS

    text = _decode(data)
    known = {
        _header_key(c.header(lang))
        for sheet in SHEETS.values()
        for c in sheet.columns
        for lang in ("nl", "en")
    }
    first_line = text.split("\n", 1)[0]
    try:
        # The header line alone can be malformed too (one cell beyond the csv module's limit).
        delimiter = _delimiter(first_line, known)
    except csv.Error:
        raise _refuse("csv_malformed", line=1) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[Cell]]] = []
    try:
        # Numbered by record, as a spreadsheet program shows the file (a quoted cell may span
        # lines).
        for number, cells in enumerate(_bounded(reader, limits), start=1):
            values: list[Cell] = [c if c.strip() else None for c in cells[:MAX_COLUMNS]]
            while values and values[-1] is None:
                values.pop()
            if values:
                rows.append((number, values))
    except csv.Error:
        raise _refuse("csv_malformed", line=max(reader.line_num, 1)) from None
    return Table("csv", rows)


def _bounded(reader: Any, limits: Limits) -> Iterator[list[str]]:
    count = 0
    for cells in reader:
        if any(c.strip() for c in cells):
            count += 1
            if count > limits.max_rows + 1:
                raise _refuse("too_many_rows", limit=limits.max_rows)
        yield cells
