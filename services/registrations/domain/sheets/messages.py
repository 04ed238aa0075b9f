"""What the upload report says, in plain Dutch (B1) and in English.

Every problem has a code (stable, for programs) and a message made from it here, so that the
parser stays free of wording and a translation is one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.registrations.domain.sheets.columns import Lang

__all__ = ["MESSAGES", "Problem", "text"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an uploaded file.

    ``row`` is the row as the spreadsheet numbers it (1 is the header row; for a ticked list,
    the position in the list); None means the file as a whole. ``column`` is a column key of
    :mod:`columns` (None: the whole row, or the file)."""

    row: int | None
    column: str | None
    code: str
    params: Mapping[str, str | int] = field(default_factory=dict)


MESSAGES: dict[str, dict[Lang, str]] = {
    # ---- the file as a whole
    "file_empty": {
        "nl": "Het bestand is leeg.",
        "en": "The file is empty.",
    },
    "file_too_large": {
        "nl": "Het bestand is groter dan {limit}. Verdeel de gegevens over meer bestanden.",
        "en": "The file is larger than {limit}. Split the data over more files.",
    },
    "unsupported_type": {
        "nl": "Bestanden van het type {ext} worden niet geaccepteerd. Gebruik een Excel-werkmap (.xlsx) of een CSV-bestand (.csv).",
        "en": "Files of type {ext} are not accepted. Use an Excel workbook (.xlsx) or a CSV file (.csv).",
    },
    "old_excel": {
        "nl": "Dit is een oud Excel-bestand (.xls) of een bestand met een wachtwoord. Sla het op als Excel-werkmap (.xlsx) zonder wachtwoord, of als CSV UTF-8.",
        "en": "This is an old Excel file (.xls) or a password-protected file. Save it as an Excel workbook (.xlsx) without a password, or as CSV UTF-8.",
    },
    "macros": {
        "nl": "Het bestand bevat macro's. Die nemen we niet aan. Sla het op als gewone Excel-werkmap (.xlsx) en probeer het opnieuw.",
        "en": "The file contains macros, which are not accepted. Save it as a plain Excel workbook (.xlsx) and try again.",
    },
    "external_links": {
        "nl": "Het bestand haalt gegevens uit andere bestanden (externe koppelingen). Die nemen we niet aan. Kopieer de cellen en plak alleen de waarden (Plakken speciaal > Waarden), verbreek de koppelingen en sla opnieuw op.",
        "en": "The file takes data from other files (external links), which are not accepted. Copy the cells and paste values only (Paste Special > Values), break the links and save again.",
    },
    "zip_bomb": {
        "nl": "Het bestand is uitgepakt groter dan {limit}. Zo groot kan een lijst niet zijn; verdeel de gegevens over meer bestanden.",
        "en": "Unpacked, the file is larger than {limit}. A list cannot be that big; split the data over more files.",
    },
    "unreadable": {
        "nl": "Het bestand kan niet worden gelezen als Excel-werkmap (.xlsx) of als CSV-bestand. Is het beschadigd? Gebruik het sjabloon.",
        "en": "The file cannot be read as an Excel workbook (.xlsx) or as a CSV file. Is it damaged? Use the template.",
    },
    "encoding": {
        "nl": "Regel {line} bevat tekens die geen UTF-8 zijn. Sla het bestand in Excel op als 'CSV UTF-8 (door komma's gescheiden)'.",
        "en": "Line {line} contains characters that are not UTF-8. In Excel, save the file as 'CSV UTF-8 (comma delimited)'.",
    },
    "binary": {
        "nl": "Regel {line} bevat tekens die niet in een tekstbestand horen. Is dit wel een CSV-bestand?",
        "en": "Line {line} contains characters that do not belong in a text file. Is this really a CSV file?",
    },
    "csv_malformed": {
        "nl": "Regel {line} van het CSV-bestand is niet goed opgebouwd (bijvoorbeeld een aanhalingsteken dat niet wordt gesloten).",
        "en": "Line {line} of the CSV file is malformed (for example a quotation mark that is never closed).",
    },
    "too_many_rows": {
        "nl": "Het bestand heeft meer dan {limit} regels. Verdeel de regels over meer bestanden.",
        "en": "The file has more than {limit} rows. Split the rows over more files.",
    },
    "no_header": {
        "nl": "De eerste regel moet de kolomnamen bevatten: {expected}. Gebruik het sjabloon.",
        "en": "The first row must hold the column names: {expected}. Use the template.",
    },
    "missing_column": {
        "nl": "De kolom '{column}' ontbreekt.",
        "en": "The column '{column}' is missing.",
    },
    "unknown_column": {
        "nl": "De kolom '{header}' hoort niet in dit bestand. Haal de kolom weg: alleen de kolommen van het sjabloon horen erin, en nooit namen.",
        "en": "The column '{header}' does not belong in this file. Remove it: only the template's columns belong there, and never names.",
    },
    "unnamed_column": {
        "nl": "Kolom {letter} heeft gegevens maar geen kolomnaam. Haal de gegevens weg of gebruik het sjabloon.",
        "en": "Column {letter} holds data but has no name. Remove the data or use the template.",
    },
    "duplicate_column": {
        "nl": "De kolom '{header}' staat er twee keer in.",
        "en": "The column '{header}' appears twice.",
    },
    "no_rows": {
        "nl": "Er staan geen gegevens onder de kolomnamen.",
        "en": "There is no data below the column names.",
    },
    "formula": {
        "nl": "Cel {cell} bevat een formule. Formules nemen we niet aan: typ de waarde zelf, of kopieer de cellen en plak alleen de waarden (Plakken speciaal > Waarden).",
        "en": "Cell {cell} contains a formula. Formulas are not accepted: type the value, or copy the cells and paste values only (Paste Special > Values).",
    },
    "excel_error": {
        "nl": "Cel {cell} bevat een foutwaarde van Excel ({value}), geen gegevens. Typ de juiste waarde in de cel.",
        "en": "Cell {cell} contains an Excel error value ({value}), not data. Type the right value into the cell.",
    },
    "formula_external": {
        "nl": "Cel {cell} bevat een formule die gegevens uit een ander bestand haalt. Dat nemen we niet aan: plak alleen de waarde.",
        "en": "Cell {cell} contains a formula that takes data from another file. That is not accepted: paste the value only.",
    },
    # ---- one cell
    "required": {
        "nl": "Dit vak is leeg. Vul het in.",
        "en": "This cell is empty. Fill it in.",
    },
    "too_long": {
        "nl": "De tekst is langer dan {max} tekens.",
        "en": "The text is longer than {max} characters.",
    },
    "date_invalid": {
        "nl": "'{value}' is geen datum. Schrijf dag-maand-jaar, bijvoorbeeld 5-11-2025.",
        "en": "'{value}' is not a date. Write day-month-year, e.g. 5-11-2025.",
    },
    "date_too_early": {
        "nl": "De datum ligt voor 1-1-2000.",
        "en": "The date lies before 1-1-2000.",
    },
    "date_future": {
        "nl": "Deze bijeenkomst is nog niet geweest. Vul alleen bijeenkomsten in die al voorbij zijn.",
        "en": "This session has not happened yet. Fill in only sessions that are over.",
    },
    "time_invalid": {
        "nl": "'{value}' is geen tijd. Schrijf uren:minuten, bijvoorbeeld 10:00.",
        "en": "'{value}' is not a time. Write hours:minutes, e.g. 10:00.",
    },
    "time_nonexistent": {
        "nl": "Deze tijd bestaat niet op deze dag: de klok gaat dan een uur vooruit (zomertijd).",
        "en": "This time does not exist on this day: the clocks go forward an hour (summer time).",
    },
    "list_invalid": {
        "nl": "'{value}' staat niet in de lijst. Kies een van: {allowed}.",
        "en": "'{value}' is not on the list. Choose one of: {allowed}.",
    },
    "status_invalid": {
        "nl": "'{value}' is geen aanwezigheid. Schrijf aanwezig of afwezig.",
        "en": "'{value}' is not an attendance. Write present or absent.",
    },
    "yesno_invalid": {
        "nl": "'{value}' is geen ja of nee. Schrijf ja of nee.",
        "en": "'{value}' is not yes or no. Write yes or no.",
    },
    "int_invalid": {
        "nl": "'{value}' is geen heel getal.",
        "en": "'{value}' is not a whole number.",
    },
    "int_range": {
        "nl": "Het getal moet tussen {min} en {max} liggen.",
        "en": "The number must lie between {min} and {max}.",
    },
    "id_invalid": {
        "nl": "Een code heeft geen spaties of schuine strepen (/) en is hoogstens 128 tekens lang.",
        "en": "A code has no spaces or slashes (/) and is at most 128 characters long.",
    },
    "number_invalid": {
        "nl": "Een deelnemernummer heeft minstens één cijfer en geen spaties. Vul nooit een naam in.",
        "en": "A participant number has at least one digit and no spaces. Never fill in a name.",
    },
    "not_text": {
        "nl": "Hier hoort tekst of een nummer, niet '{value}'.",
        "en": "This cell should hold text or a number, not '{value}'.",
    },
    "unknown_activity": {
        "nl": "Er is geen activiteit met de code '{value}'. Voeg de activiteit eerst toe. Bekende codes: {known}.",
        "en": "There is no activity with the code '{value}'. Add the activity first. Known codes: {known}.",
    },
    "unknown_activity_none": {
        "nl": "Er is geen activiteit met de code '{value}'. Uw organisatie heeft nog geen activiteiten: voeg de activiteit eerst toe.",
        "en": "There is no activity with the code '{value}'. Your organisation has no activities yet: add the activity first.",
    },
    "duplicate_row": {
        "nl": "Regel {other} gaat over dezelfde deelnemer bij dezelfde bijeenkomst, maar zegt iets anders. Laat één van beide staan.",
        "en": "Row {other} is about the same participant at the same session but says something else. Keep one of them.",
    },
    "duplicate_activity": {
        "nl": "Regel {other} heeft dezelfde activiteitcode, maar andere gegevens. Laat één van beide staan.",
        "en": "Row {other} has the same activity code but other details. Keep one of them.",
    },
    "conflict_status": {
        "nl": "Deze deelnemer staat voor deze bijeenkomst al opgeslagen als {recorded}. Een opgeslagen aanwezigheid kan niet veranderen. Is het bestand juist, neem dan contact op met de coördinator.",
        "en": "This participant is already recorded as {recorded} for this session. A recorded attendance cannot change. If the file is right, contact the coordinator.",
    },
    "conflict_other": {
        "nl": "Deze deelnemer staat voor deze bijeenkomst al opgeslagen, met een andere wijk of leeftijdsgroep. Een opgeslagen aanwezigheid kan niet veranderen.",
        "en": "This participant is already recorded for this session, with another neighbourhood or age band. A recorded attendance cannot change.",
    },
    "rejected": {
        "nl": "Niet opgeslagen: {detail}",
        "en": "Not saved: {detail}",
    },
    # ---- the report's summary
    "summary_saved": {
        "nl": "{rows} regels gelezen: {created} nieuw opgeslagen, {unchanged} waren al opgeslagen.",
        "en": "{rows} rows read: {created} newly saved, {unchanged} were saved before.",
    },
    "summary_nothing_saved": {
        "nl": "{count} problemen gevonden in {rows} regels. Er is niets opgeslagen. Verbeter het bestand en upload het opnieuw, of kies om alleen de goede regels op te slaan.",
        "en": "{count} problems found in {rows} rows. Nothing was saved. Correct the file and upload it again, or choose to save only the good rows.",
    },
    "summary_nothing_saved_one": {
        "nl": "1 probleem gevonden in {rows} regels. Er is niets opgeslagen. Verbeter het bestand en upload het opnieuw, of kies om alleen de goede regels op te slaan.",
        "en": "1 problem found in {rows} rows. Nothing was saved. Correct the file and upload it again, or choose to save only the good rows.",
    },
    "summary_partly_saved": {
        "nl": "{rows} regels gelezen: {created} nieuw opgeslagen, {unchanged} waren al opgeslagen, {rejected} niet opgeslagen door de problemen hieronder.",
        "en": "{rows} rows read: {created} newly saved, {unchanged} were saved before, {rejected} not saved because of the problems below.",
    },
    "summary_unreadable": {
        "nl": "Het bestand is niet gelezen. Er is niets opgeslagen.",
        "en": "The file was not read. Nothing was saved.",
    },
}


def text(code: str, lang: Lang, params: Mapping[str, str | int] | None = None) -> str:
    template = MESSAGES[code][lang]
    return template.format(**(params or {}))
