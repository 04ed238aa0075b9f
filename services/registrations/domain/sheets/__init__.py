"""Spreadsheets for partners without a booking system (issue 16): templates to download, and
an uploaded file read into batch items of the registrations service plus a problem per bad
cell, named by row and column, in Dutch or English. Pure: no HTTP, no database."""

from services.registrations.domain.sheets.columns import (
    ACTIVITIES,
    ATTENDANCE,
    SHEETS,
    Column,
    Lang,
    Sheet,
    SheetKind,
    language,
)
from services.registrations.domain.sheets.items import (
    ATTENDANCE_ID_PREFIX,
    activity_items,
    attendance_id,
    attendance_items,
)
from services.registrations.domain.sheets.messages import Problem, text
from services.registrations.domain.sheets.parse import (
    ActivitySheetRow,
    AttendanceSheetRow,
    Parsed,
    parse_activities,
    parse_attendance,
)
from services.registrations.domain.sheets.reading import Limits, SheetError, Table, read_table
from services.registrations.domain.sheets.report import RowProblem, column_for_field, describe
from services.registrations.domain.sheets.templates import csv_template, xlsx_template

__all__ = [
    "ACTIVITIES",
    "ATTENDANCE",
    "ATTENDANCE_ID_PREFIX",
    "SHEETS",
    "ActivitySheetRow",
    "AttendanceSheetRow",
    "Column",
    "Lang",
    "Limits",
    "Parsed",
    "Problem",
    "RowProblem",
    "Sheet",
    "SheetError",
    "SheetKind",
    "Table",
    "activity_items",
    "attendance_id",
    "attendance_items",
    "column_for_field",
    "csv_template",
    "describe",
    "language",
    "parse_activities",
    "parse_attendance",
    "read_table",
    "text",
    "xlsx_template",
]
