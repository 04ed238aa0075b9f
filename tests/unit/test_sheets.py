"""The spreadsheet parser against what partners' files really hold, and against hostile files:
huge, zip bombs, macros, formulas (external ones especially), wrong types, wrong encodings,
Excel dates and times as serials or as text."""

from __future__ import annotations

import io
import re
import string
import time as clock
import zipfile
from datetime import UTC, date, datetime, time, timedelta

import pytest
from openpyxl import Workbook, load_workbook

from services.registrations.domain.sheets import (
    ACTIVITIES,
    ATTENDANCE,
    Limits,
    SheetError,
    csv_template,
    describe,
    parse_activities,
    parse_attendance,
    read_table,
    xlsx_template,
)
from services.registrations.domain.sheets.messages import MESSAGES
from shared.reference import load_reference

REF = load_reference()
LIMITS = Limits()
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
HEADER = ["datum", "begintijd", "activiteit", "deelnemernummer", "wijk", "leeftijdsgroep", "aanwezigheid"]  # fmt: skip
ROW = ["5-11-2025", "10:00", "koffie", "0042", "Pijnacker-Noord", "65-74", "aanwezig"]


def csv_bytes(*rows: list[str], sep: str = ";", header: list[str] = HEADER, encoding: str = "utf-8-sig") -> bytes:  # fmt: skip
    return "\r\n".join(sep.join(r) for r in [header, *rows]).encode(encoding)


def xlsx_bytes(*rows: list[object], header: list[str] = HEADER, epoch1904: bool = False) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    if epoch1904:
        from openpyxl.utils.datetime import MAC_EPOCH

        book.epoch = MAC_EPOCH
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def attendance(data: bytes, name: str = "x.csv", now: datetime = NOW, **kw: object):
    return parse_attendance(read_table(data, name, LIMITS), REF, now=now, **kw)  # type: ignore[arg-type]


def refused(data: bytes, name: str = "x.xlsx", limits: Limits = LIMITS) -> list[str]:
    with pytest.raises(SheetError) as caught:
        read_table(data, name, limits)
    return [p.code for p in caught.value.problems]


def codes(parsed) -> list[tuple[int | None, str | None, str]]:
    return [(p.row, p.column, p.code) for p in parsed.problems]


# ---------------------------------------------------------------------------- good files


def test_a_dutch_csv_as_excel_writes_it_is_read() -> None:
    parsed = attendance(csv_bytes(ROW))
    assert codes(parsed) == []
    [row] = parsed.rows
    assert row.session_start.isoformat() == "2025-11-05T10:00:00+01:00"
    assert (row.activity_id, row.participant_number, row.neighbourhood, row.age_band, row.status) == (
        "koffie", "0042", "pijnacker-noord", "65-74", "attended",
    )  # fmt: skip


@pytest.mark.parametrize("sep", [";", ",", "\t"])
def test_any_of_the_usual_separators(sep: str) -> None:
    assert len(attendance(csv_bytes(ROW, sep=sep)).rows) == 1


def test_english_headers_and_values_are_read_too() -> None:
    header = ["date", "start time", "activity", "participant number", "neighbourhood", "age band", "attendance"]  # fmt: skip
    row = ["2025-11-05", "10:00", "koffie", "42", "Outside the municipality", "unknown", "absent"]
    [parsed] = attendance(csv_bytes(row, header=header)).rows
    assert (parsed.neighbourhood, parsed.age_band, parsed.status) == ("outside-municipality", "unknown", "no_show")  # fmt: skip


def test_utf16_with_a_byte_order_mark_is_excels_unicode_text() -> None:
    data = "\r\n".join("\t".join(r) for r in [HEADER, ROW])
    assert len(attendance(data.encode("utf-16")).rows) == 1


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("sheet", [ATTENDANCE, ACTIVITIES], ids=["attendance", "activities"])
def test_a_template_filled_in_reads_back(lang: str, sheet) -> None:
    data = xlsx_template(sheet, REF, lang, rows=100, activity_ids=["koffie"])  # type: ignore[arg-type]
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames[0] == sheet.title(lang)
    assert book.worksheets[2].sheet_state == "hidden" or book.worksheets[1].sheet_state == "hidden"
    ws = book.worksheets[0]
    if sheet is ATTENDANCE:
        ws.append([date(2025, 11, 5), time(10), "koffie", "7", REF.label("neighbourhoods", "de-venen", lang), "75+", "aanwezig" if lang == "nl" else "present"])  # fmt: skip
    else:
        ws.append(["koffie", "Koffie", REF.label("activity_categories", "meeting", lang), "ja" if lang == "nl" else "yes", "Delfgauw", None, None])  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    table = read_table(out.getvalue(), "t.xlsx", LIMITS)
    parsed = (
        parse_attendance(table, REF, now=NOW)
        if sheet is ATTENDANCE
        else parse_activities(table, REF)
    )
    assert codes(parsed) == []
    assert len(parsed.rows) == 1
    csv_header = csv_template(sheet, lang).decode("utf-8-sig").strip().split(";")  # type: ignore[arg-type]
    assert csv_header == [c.header(lang) for c in sheet.columns]  # type: ignore[arg-type]


def test_the_template_lists_come_from_the_reference_data() -> None:
    book = load_workbook(io.BytesIO(xlsx_template(ATTENDANCE, REF, "nl", rows=10)))
    lists = book["Lijsten"]
    neighbourhoods = [c.value for c in lists["E"]][1:]
    assert neighbourhoods == [REF.label("neighbourhoods", v, "nl") for v in REF.neighbourhood_order]
    assert [c.value for c in lists["G"] if c.value][1:] == ["aanwezig", "afwezig"]


# -------------------------------------------------------------------- Excel dates and times


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("5-11-2025", date(2025, 11, 5)),
        ("05-11-2025", date(2025, 11, 5)),
        ("5/11/2025", date(2025, 11, 5)),
        ("5.11.2025", date(2025, 11, 5)),
        ("5-11-25", date(2025, 11, 5)),
        ("2025-11-05", date(2025, 11, 5)),
        ("5-11-2025 00:00", date(2025, 11, 5)),
        ("45966", date(2025, 11, 5)),  # an Excel serial, written into a CSV as text
    ],
)
def test_dates_as_text(day: str, expected: date) -> None:
    [row] = attendance(csv_bytes([day, *ROW[1:]])).rows
    assert row.session_start.date() == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [("10:00", time(10)), ("9:30", time(9, 30)), ("10.30", time(10, 30)), ("10u", time(10)),
     ("10 uur", time(10)), ("14:15:00", time(14, 15)), ("9", time(9))],
)  # fmt: skip
def test_times_as_text(at: str, expected: time) -> None:
    [row] = attendance(csv_bytes([ROW[0], at, *ROW[2:]])).rows
    assert row.session_start.timetz().replace(tzinfo=None) == expected


def test_dates_and_times_as_excel_keeps_them() -> None:
    rows = [
        [datetime(2025, 11, 5), time(10, 0), "koffie", "1", "delfgauw", "75+", "aanwezig"],
        [45966, 0.4375, "koffie", "2", "delfgauw", "75+", "aanwezig"],  # serial, fraction of a day
        [45966.0, datetime(1899, 12, 30, 10, 30), "koffie", "3", "delfgauw", "75+", "aanwezig"],
        [date(2025, 11, 5), 10, "koffie", "4", "delfgauw", "75+", "aanwezig"],
    ]
    parsed = attendance(xlsx_bytes(*rows), "x.xlsx")
    assert codes(parsed) == []
    assert [r.session_start.strftime("%Y-%m-%d %H:%M") for r in parsed.rows] == [
        "2025-11-05 10:00", "2025-11-05 10:30", "2025-11-05 10:30", "2025-11-05 10:00",
    ]  # fmt: skip


def test_a_workbook_in_the_1904_date_system() -> None:
    # 44504 days after 1904-01-01 is 2025-11-05 (the Mac date system of old workbooks).
    parsed = attendance(xlsx_bytes([44504, "10:00", "koffie", "1", "delfgauw", "75+", "aanwezig"], epoch1904=True), "x.xlsx")  # fmt: skip
    assert [r.session_start.date() for r in parsed.rows] == [date(2025, 11, 5)]


@pytest.mark.parametrize(
    ("day", "at", "column", "code"),
    [
        ("31-02-2025", "10:00", "date", "date_invalid"),
        ("11/5/2025 3 PM", "10:00", "date", "date_invalid"),
        ("vandaag", "10:00", "date", "date_invalid"),
        ("99999", "10:00", "date", "date_invalid"),  # a serial beyond 2099
        ("5-11-1999", "10:00", "date", "date_too_early"),
        ("5-11-2030", "10:00", "date", "date_future"),
        ("5-11-2025", "25:00", "start_time", "time_invalid"),
        ("5-11-2025", "10:75", "start_time", "time_invalid"),
        ("5-11-2025", "ochtend", "start_time", "time_invalid"),
        ("29-3-2026", "2:30", "start_time", "time_nonexistent"),  # the clocks skip 2:00-3:00
    ],
)
def test_wrong_dates_and_times_are_named_on_their_cell(day: str, at: str, column: str, code: str) -> None:  # fmt: skip
    parsed = attendance(csv_bytes([day, at, *ROW[2:]]), now=datetime(2026, 6, 1, tzinfo=UTC))
    assert codes(parsed) == [(2, column, code)]
    assert parsed.rows == []


# ------------------------------------------------------------------------------ wrong types


def test_wrong_types_in_an_xlsx_are_named_on_their_cell() -> None:
    rows = [
        [time(10), "10:00", "koffie", "1", "delfgauw", "75+", "aanwezig"],  # a time as date
        [date(2025, 11, 5), date(2025, 11, 5), "koffie", "2", "delfgauw", "75+", "aanwezig"],
        ["5-11-2025", "10:00", True, "3", "delfgauw", "75+", "aanwezig"],  # a boolean as code
        ["5-11-2025", "10:00", "koffie", 4.5, "delfgauw", "75+", "aanwezig"],  # a fraction
        ["5-11-2025", "10:00", "koffie", "Jan Jansen", "delfgauw", "75+", "aanwezig"],  # a name
        ["5-11-2025", "10:00", "koffie", "6", 1926, "75+", 1],
        ["5-11-2025", "10:00", "koffie", "x" * 600, "delfgauw", "75+", "aanwezig"],
        ["5-11-2025", "10:00", "koffie", "8", "delfgauw", None, "aanwezig"],
    ]
    parsed = attendance(xlsx_bytes(*rows), "x.xlsx")
    assert codes(parsed) == [
        (2, "date", "date_invalid"),
        (3, "start_time", "time_invalid"),
        (4, "activity", "not_text"),
        (5, "participant_number", "number_invalid"),  # never echoed: it may be a reference
        (6, "participant_number", "number_invalid"),
        (7, "neighbourhood", "list_invalid"),
        (7, "status", "status_invalid"),
        (8, "participant_number", "too_long"),
        (9, "age_band", "required"),
    ]
    assert parsed.rows == []


def test_excel_error_values_are_named_on_their_cell_never_read_as_data() -> None:
    """An error value pasted as a value (#DIV/0!, #N/A ...) is no participant number, however
    much it looks like one (it holds a digit and no space): refused on its cell, by name."""
    rows = [
        ["5-11-2025", "10:00", "koffie", "#DIV/0!", "delfgauw", "75+", "aanwezig"],
        ["#N/A", "#VALUE!", "koffie", "2", "delfgauw", "75+", "aanwezig"],
        ROW,
    ]
    parsed = attendance(xlsx_bytes(*rows), "x.xlsx")
    assert [(p.row, p.column, p.code, p.params["cell"], p.params["value"]) for p in parsed.problems] == [
        (2, "participant_number", "excel_error", "D2", "#DIV/0!"),
        (3, "date", "excel_error", "A3", "#N/A"),
        (3, "start_time", "excel_error", "B3", "#VALUE!"),
    ]  # fmt: skip
    assert [r.row for r in parsed.rows] == [4]
    [nl] = describe(parsed.problems[:1], ATTENDANCE, REF, "nl", positions=parsed.positions, headers=parsed.headers)  # fmt: skip
    assert (nl.row, nl.column, nl.column_letter) == (2, "deelnemernummer", "D")
    assert nl.message.startswith("Cel D2 bevat een foutwaarde van Excel (#DIV/0!)")
    # The same text typed into a text cell is only text: read by the column's own rule.
    assert codes(attendance(csv_bytes([*ROW[:3], "#N/A", *ROW[4:]]))) == [(2, "participant_number", "number_invalid")]  # fmt: skip


def test_durations_and_date_times_where_a_time_or_a_date_belongs() -> None:
    """Cells formatted as a duration ([u]:mm) read as the time they show; a date with a time of
    day in the date column takes its time from the time column; a date in the time column, a
    duration of a day or more, and serials outside a day are refused on their cell."""
    rows = [
        [date(2025, 11, 5), timedelta(hours=10, minutes=15), "koffie", "1", "delfgauw", "75+", "aanwezig"],
        [datetime(2025, 11, 5, 18, 45), time(10, 0), "koffie", "2", "delfgauw", "75+", "aanwezig"],
        [45966.5, "10:00", "koffie", "3", "delfgauw", "75+", "aanwezig"],  # a serial with a time
        [date(2025, 11, 5), timedelta(hours=26), "koffie", "4", "delfgauw", "75+", "aanwezig"],
        [date(2025, 11, 5), datetime(2025, 11, 5, 10), "koffie", "5", "delfgauw", "75+", "aanwezig"],
        [date(2025, 11, 5), 1.5, "koffie", "6", "delfgauw", "75+", "aanwezig"],
        [date(2025, 11, 5), -0.25, "koffie", "7", "delfgauw", "75+", "aanwezig"],
        [60, "10:00", "koffie", "8", "delfgauw", "75+", "aanwezig"],  # Lotus' 29 February 1900
        [-1, "10:00", "koffie", "9", "delfgauw", "75+", "aanwezig"],
        [True, False, "koffie", "10", "delfgauw", "75+", "aanwezig"],
    ]  # fmt: skip
    parsed = attendance(xlsx_bytes(*rows), "x.xlsx")
    assert [r.session_start.strftime("%Y-%m-%d %H:%M") for r in parsed.rows] == [
        "2025-11-05 10:15", "2025-11-05 10:00", "2025-11-05 10:00",
    ]  # fmt: skip
    assert codes(parsed) == [
        (5, "start_time", "time_invalid"),
        (6, "start_time", "time_invalid"),
        (7, "start_time", "time_invalid"),
        (8, "start_time", "time_invalid"),
        (9, "date", "date_invalid"),
        (10, "date", "date_invalid"),
        (11, "date", "date_invalid"),
        (11, "start_time", "time_invalid"),
    ]


def test_numbers_typed_into_text_columns_are_read_as_text() -> None:
    [row] = attendance(xlsx_bytes(["5-11-2025", "10:00", 12, 42.0, "delfgauw", "75+", "aanwezig"]), "x.xlsx").rows  # fmt: skip
    assert (row.activity_id, row.participant_number) == ("12", "42")


def test_unknown_activities_are_named_with_the_known_ones() -> None:
    parsed = attendance(csv_bytes(ROW), known_activities={"wandelen", "taalcafe"})
    [problem] = describe(parsed.problems, ATTENDANCE, REF, "nl", positions=parsed.positions, headers=parsed.headers)  # fmt: skip
    assert (problem.row, problem.column, problem.column_letter) == (2, "activiteit", "C")
    assert problem.message == "Er is geen activiteit met de code 'koffie'. Voeg de activiteit eerst toe. Bekende codes: taalcafe, wandelen."  # fmt: skip


def test_a_row_repeated_counts_once_and_a_contradicting_one_is_a_problem() -> None:
    other = [*ROW[:6], "afwezig"]
    parsed = attendance(csv_bytes(ROW, ROW, other))
    assert len(parsed.rows) == 1
    assert codes(parsed) == [(4, None, "duplicate_row")]
    assert parsed.problems[0].params == {"other": 2}


def test_activities_rows() -> None:
    header = ["activiteitcode", "naam", "soort", "gericht op ontmoeting", "wijk", "maximaal aantal deelnemers", "actief"]  # fmt: skip
    rows = [
        ["koffie", "Koffie-ochtend", "Ontmoeting", "ja", "Delfgauw", "12", ""],
        ["sport", "Bewegen", "sport", "WAAR", "delfgauw", "", "nee"],
        ["met spatie", "", "hobby", "misschien", "Delfgauw", "-1", "ja"],
    ]
    parsed = parse_activities(read_table(csv_bytes(*rows, header=header), "a.csv", LIMITS), REF)
    assert [(r.activity_id, r.category, r.aimed_at_connection, r.capacity, r.active) for r in parsed.rows] == [
        ("koffie", "meeting", True, 12, True),
        ("sport", "sport", True, None, False),
    ]  # fmt: skip
    assert codes(parsed) == [
        (4, "activity_id", "id_invalid"),
        (4, "title", "required"),
        (4, "category", "list_invalid"),
        (4, "aimed_at_connection", "yesno_invalid"),
        (4, "capacity", "int_invalid"),
    ]


# ------------------------------------------------------------------------------ the header


def test_a_column_not_in_the_template_refuses_the_file() -> None:
    parsed = attendance(csv_bytes(["Jan", *ROW], header=["naam", *HEADER]))
    assert codes(parsed) == [(1, None, "unknown_column")]
    assert parsed.rows == []


def test_missing_duplicate_and_unnamed_columns() -> None:
    assert codes(attendance(csv_bytes(ROW[:6], header=HEADER[:6]))) == [(1, None, "missing_column")]
    assert codes(attendance(csv_bytes([*ROW, "x"], header=[*HEADER, "wijk"]))) == [(1, None, "duplicate_column")]  # fmt: skip
    assert codes(attendance(csv_bytes([*ROW, "x"]))) == [(1, None, "unnamed_column")]
    assert codes(attendance(csv_bytes(ROW, header=["a", "b"]))) == [(1, None, "no_header")]
    assert codes(attendance(csv_bytes())) == [(None, None, "no_rows")]


# ------------------------------------------------------------------------------ hostile files


def test_an_empty_or_oversized_file() -> None:
    assert refused(b"") == ["file_empty"]
    assert refused(b"x" * (LIMITS.max_bytes + 1), "x.csv") == ["file_too_large"]


def test_too_many_rows() -> None:
    small = Limits(max_rows=5)
    many = csv_bytes(*[ROW] * 6)
    assert refused(many, "x.csv", small) == ["too_many_rows"]
    assert refused(xlsx_bytes(*[ROW] * 6), "x.xlsx", small) == ["too_many_rows"]
    read_table(csv_bytes(*[ROW] * 5), "x.csv", small)  # the limit itself is fine


def test_a_cell_a_million_rows_down_is_refused_without_reading_a_million_rows() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append(ROW)
    sheet.cell(row=1_048_576, column=1, value="x")
    out = io.BytesIO()
    book.save(out)
    started = clock.monotonic()
    assert refused(out.getvalue(), "x.xlsx", Limits(max_rows=100)) == ["too_many_rows"]
    assert clock.monotonic() - started < 30  # bounded (not a speed target: a hang would fail)


def _with_member(data: bytes, name: str, content: bytes, *, content_types: bytes | None = None) -> bytes:  # fmt: skip
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            body = source.read(item.filename)
            if content_types is not None and item.filename == "[Content_Types].xml":
                body = content_types
            target.writestr(item, body)
        target.writestr(name, content)
    return out.getvalue()


def test_a_cell_far_to_the_right_is_not_read_up_to_it() -> None:
    """A sheet may claim a cell in the last column (XFD): reading stops at the columns a file of
    ours can have, so the row costs no 16,384 cells."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    for _ in range(LIMITS.max_rows):
        sheet.append(ROW)
    sheet.cell(row=2, column=16_384, value="x")
    out = io.BytesIO()
    book.save(out)
    table = read_table(out.getvalue(), "x.xlsx", LIMITS)
    assert max(len(cells) for _, cells in table.rows) == len(HEADER)


def test_a_csv_of_one_huge_cell_is_refused_on_its_line() -> None:
    """Python's csv module stops at a field of 128 KiB: the header line and a data line that
    are one enormous cell (within the upload's size limit) are a malformed file, not a crash."""
    huge = b"x" * 300_000
    assert refused(b"a;" + huge, "x.csv") == ["csv_malformed"]
    assert refused(csv_bytes(ROW) + b'\r\n"' + huge + b'";10:00', "x.csv") == ["csv_malformed"]
    with pytest.raises(SheetError) as caught:
        read_table(csv_bytes(ROW) + b'\r\n"' + huge + b'";10:00', "x.csv", LIMITS)
    assert caught.value.problems[0].params["line"] == 3


def test_a_zip_bomb_is_refused_before_anything_is_unpacked() -> None:
    bomb = _with_member(xlsx_bytes(ROW), "xl/media/padding.bin", b"\0" * 30_000_000)
    assert len(bomb) < 100_000  # small on the wire ...
    assert refused(bomb) == ["zip_bomb"]  # ... and refused for what it unpacks to


def test_macros_are_refused_by_name_part_and_content_type() -> None:
    plain = xlsx_bytes(ROW)
    assert refused(plain, "lijst.xlsm") == ["macros"]
    assert refused(_with_member(plain, "xl/vbaProject.bin", b"VBA")) == ["macros"]
    types = (
        zipfile.ZipFile(io.BytesIO(plain))
        .read("[Content_Types].xml")
        .replace(b"spreadsheetml.sheet.main+xml", b"sheet.macroEnabled.main+xml")
    )
    assert refused(_with_member(plain, "docProps/x.xml", b"<x/>", content_types=types)) == [
        "macros"
    ]


def test_old_binary_and_other_formats_are_refused() -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512
    assert refused(ole2, "lijst.xls") == ["old_excel"]
    assert refused(ole2, "lijst.xlsx") == ["old_excel"]  # a password-protected workbook
    assert refused(b"PK\x03\x04" + b"\0" * 100, "lijst.ods") == ["unsupported_type"]
    assert refused(b"PK\x03\x04" + b"garbage" * 50) == ["unreadable"]
    assert refused(b"PK\x03\x04" + b"garbage" * 50, "lijst.xlsb") == ["unsupported_type"]


def test_formulas_are_refused_on_their_cell_and_external_ones_named_as_such() -> None:
    rows = [
        ["=TODAY()", "10:00", "koffie", "1", "delfgauw", "75+", "aanwezig"],
        [
            "5-11-2025",
            "10:00",
            "koffie",
            "='C:\\lijsten\\[leden.xlsx]Blad1'!A1",
            "delfgauw",
            "75+",
            "aanwezig",
        ],
        ["5-11-2025", "10:00", "koffie", "=[1]Blad1!A1", "delfgauw", "75+", "aanwezig"],
        ROW,
    ]
    parsed = attendance(xlsx_bytes(*rows), "x.xlsx")
    assert [(p.row, p.column, p.code, p.params["cell"]) for p in parsed.problems] == [
        (2, "date", "formula", "A2"),
        (3, "participant_number", "formula_external", "D3"),
        (4, "participant_number", "formula_external", "D4"),
    ]
    assert [r.row for r in parsed.rows] == [5]  # no formula row is written, whatever it computed


def test_external_link_parts_refuse_the_whole_file() -> None:
    linked = _with_member(xlsx_bytes(ROW), "xl/externalLinks/externalLink1.xml", b"<externalLink/>")
    assert refused(linked) == ["external_links"]


def test_an_xml_entity_bomb_is_not_expanded() -> None:
    """defusedxml (which openpyxl parses through when installed) refuses entity declarations."""
    entities = b'<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    plain = xlsx_bytes(ROW)
    source = zipfile.ZipFile(io.BytesIO(plain))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            body = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                declaration, _, rest = body.partition(b"?>")
                body = (
                    declaration
                    + b"?><!DOCTYPE worksheet ["
                    + entities
                    + b"]>"
                    + rest.replace(b"koffie", b"&lol9;")
                )
            target.writestr(item, body)
    assert refused(out.getvalue()) == ["unreadable"]


@pytest.mark.parametrize(
    ("data", "code", "line"),
    [
        (
            csv_bytes(
                ROW,
                ["6-11-2025", "10:00", "koffie", "2", "Delfg\u00e5uw", "75+", "aanwezig"],
                encoding="latin-1",
            ),
            "encoding",
            3,
        ),
        (csv_bytes(ROW, encoding="cp1252") + b"\x81", "encoding", 2),  # undefined in Windows-1252
        (b"datum;begintijd\r\n5-11\x00-2025;10:00\r\n", "binary", 2),
        # Excel's other encodings: Mac Roman, UTF-16 without its byte-order mark, UTF-32 (whose
        # mark starts like UTF-16's), a UTF-8 mark before Latin-1 text, UTF-16 cut in half.
        (
            csv_bytes(ROW, [*ROW[:4], "Delfg\u00e5uw", *ROW[5:]], encoding="mac_roman"),
            "encoding",
            3,
        ),
        (csv_bytes(ROW, encoding="utf-16-le"), "binary", 1),
        (csv_bytes(ROW, encoding="utf-32"), "binary", 1),
        (
            b"\xef\xbb\xbf"
            + csv_bytes(ROW, [*ROW[:4], "Delfg\u00e5uw", *ROW[5:]], encoding="latin-1"),
            "encoding",
            3,
        ),
        (csv_bytes(ROW, encoding="utf-16")[:-1], "encoding", 1),
        (b'datum;begintijd\r\n"5-11-2025;10:00\r\n6-11-2025;"x"y\r\n', "csv_malformed", 3),
    ],
)
def test_wrong_encodings_and_broken_csv_name_the_line(data: bytes, code: str, line: int) -> None:
    with pytest.raises(SheetError) as caught:
        read_table(data, "x.csv", LIMITS)
    [problem] = caught.value.problems
    assert (problem.code, problem.params["line"]) == (code, line)


# ------------------------------------------------------------------------------ the messages


def test_every_message_exists_in_dutch_and_english_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for code, texts in MESSAGES.items():
        assert set(texts) == {"nl", "en"}, code
        names = [{f for _, f, _, _ in fields.parse(texts[lang]) if f} for lang in ("nl", "en")]
        assert names[0] == names[1], code


def test_a_described_problem_names_row_column_letter_and_field_in_the_readers_language() -> None:
    parsed = attendance(csv_bytes([*ROW[:4], "Noord", *ROW[5:]]))
    [nl] = describe(parsed.problems, ATTENDANCE, REF, "nl", positions=parsed.positions, headers=parsed.headers)  # fmt: skip
    [en] = describe(parsed.problems, ATTENDANCE, REF, "en", positions=parsed.positions, headers=parsed.headers)  # fmt: skip
    assert (nl.row, nl.column, nl.column_letter, nl.field) == (2, "wijk", "E", "participant.neighbourhood")  # fmt: skip
    assert nl.message.startswith(
        "'Noord' staat niet in de lijst. Kies een van: Pijnacker-Centrum, "
    )
    assert en.message.endswith("Outside the municipality, Unknown.")
    assert re.search(r"\bwijk\b", en.column or "")  # the header as written in the file
