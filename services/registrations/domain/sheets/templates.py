"""The templates partners download: XLSX with drop-down lists, and CSV.

The XLSX holds the sheet to fill in (first, where the upload reads), a sheet that explains each
column, and a hidden sheet with the values of the drop-down lists, taken from the reference data
(and the organisation's own activity codes), so that a template never disagrees with the lists
the platform checks against.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from services.registrations.domain.sheets.columns import (
    STATUS_WORDS,
    YES_NO_WORDS,
    Column,
    Lang,
    Sheet,
)
from shared.reference import ReferenceData

__all__ = ["csv_template", "xlsx_template"]

NUMBER_FORMATS = {"date": "d-m-yyyy", "time": "hh:mm", "number": "@", "id": "@", "text": "@"}
TEXTS: dict[str, dict[Lang, str]] = {
    "lists": {"nl": "Lijsten", "en": "Lists"},
    "help": {"nl": "Uitleg", "en": "Help"},
    "help.title": {
        "nl": "Zo vult u het blad '{sheet}' in",
        "en": "How to fill in the sheet '{sheet}'",
    },
    "help.rules": {
        "nl": "Eén regel per deelnemer per bijeenkomst (bij activiteiten: één regel per activiteit). "
        "Laat de kolomnamen in de eerste regel staan. Gebruik geen formules. "
        "Namen horen niet in dit bestand: gebruik uw eigen deelnemernummer. "
        "Sla op als Excel-werkmap (.xlsx) of als CSV UTF-8. Hetzelfde bestand nog eens "
        "uploaden kan geen kwaad: wat al opgeslagen is, telt maar één keer.",
        "en": "One row per participant per session (for activities: one row per activity). "
        "Keep the column names in the first row. Do not use formulas. "
        "Names do not belong in this file: use your own participant number. "
        "Save as an Excel workbook (.xlsx) or as CSV UTF-8. Uploading the same file again does "
        "no harm: what was saved before counts only once.",
    },
    "column": {"nl": "Kolom", "en": "Column"},
    "explain": {"nl": "Uitleg", "en": "Explanation"},
    "choices": {"nl": "Keuzes", "en": "Choices"},
    "error.title": {"nl": "Kies uit de lijst", "en": "Choose from the list"},
    "error": {
        "nl": "Deze waarde staat niet in de lijst. Kies een waarde uit de lijst.",
        "en": "This value is not on the list. Choose a value from the list.",
    },
}


def _choices(
    column: Column, reference: ReferenceData, lang: Lang, activity_ids: Sequence[str]
) -> list[str]:
    if column.list_name:
        return [
            reference.label(column.list_name, v, lang) for v in reference.ordered(column.list_name)
        ]
    if column.kind == "status":
        return [words[lang] for words in STATUS_WORDS.values()]
    if column.kind == "yesno":
        return [words[lang] for words in YES_NO_WORDS.values()]
    if column.kind == "id" and column.key == "activity":
        return list(activity_ids)
    return []


def xlsx_template(
    sheet: Sheet,
    reference: ReferenceData,
    lang: Lang,
    *,
    rows: int,
    activity_ids: Sequence[str] = (),
) -> bytes:
    """The XLSX template of ``sheet`` with drop-down lists on ``rows`` rows below the header."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter, quote_sheetname
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    data = book.active
    assert data is not None
    data.title = sheet.title(lang)
    lists = book.create_sheet(TEXTS["lists"][lang])
    help_sheet = book.create_sheet(TEXTS["help"][lang])

    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for index, column in enumerate(sheet.columns, start=1):
        letter = get_column_letter(index)
        cell = data.cell(row=1, column=index, value=column.header(lang))
        cell.font = bold
        cell.fill = fill
        data.column_dimensions[letter].width = column.width
        fmt = NUMBER_FORMATS.get(column.kind)
        if fmt:
            data.column_dimensions[letter].number_format = fmt
        choices = _choices(column, reference, lang, activity_ids)
        if not choices:
            continue
        lists.cell(row=1, column=index, value=column.header(lang)).font = bold
        for offset, choice in enumerate(choices, start=2):
            lists.cell(row=offset, column=index, value=choice)
        source = f"{quote_sheetname(lists.title)}!${letter}$2:${letter}${len(choices) + 1}"
        # The activity list is the organisation's at download time: a later activity must
        # still be typeable (a warning, not a stop).
        validation = DataValidation(
            type="list",
            formula1=source,
            allow_blank=True,
            showErrorMessage=True,
            errorStyle="warning" if column.key == "activity" else "stop",
            errorTitle=TEXTS["error.title"][lang],
            error=TEXTS["error"][lang],
            showInputMessage=True,
            prompt=column.hint(lang)[:255],
        )
        validation.add(f"{letter}2:{letter}{rows + 1}")
        data.add_data_validation(validation)
    data.freeze_panes = "A2"
    lists.sheet_state = "hidden"

    help_sheet.column_dimensions["A"].width = 28
    help_sheet.column_dimensions["B"].width = 90
    help_sheet.cell(
        row=1, column=1, value=TEXTS["help.title"][lang].format(sheet=data.title)
    ).font = Font(bold=True, size=14)
    help_sheet.cell(row=2, column=1, value=TEXTS["help.rules"][lang]).alignment = Alignment(
        wrap_text=True, vertical="top"
    )
    help_sheet.merge_cells("A2:B2")
    help_sheet.row_dimensions[2].height = 90
    help_sheet.cell(row=4, column=1, value=TEXTS["column"][lang]).font = bold
    help_sheet.cell(row=4, column=2, value=TEXTS["explain"][lang]).font = bold
    for offset, column in enumerate(sheet.columns, start=5):
        help_sheet.cell(row=offset, column=1, value=column.header(lang))
        help_sheet.cell(row=offset, column=2, value=column.hint(lang)).alignment = Alignment(
            wrap_text=True
        )

    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_template(sheet: Sheet, lang: Lang) -> bytes:
    """The header row, UTF-8 with the byte-order mark and `;` between columns: what Dutch Excel
    opens into columns and writes back as "CSV UTF-8"."""
    return ("\ufeff" + ";".join(c.header(lang) for c in sheet.columns) + "\r\n").encode("utf-8")
