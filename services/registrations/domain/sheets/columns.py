"""The columns of the two spreadsheets partners fill in: activities and an attendance register.

One definition serves the templates, the parser and the report: a column's Dutch and English
header, the API field it fills (named in the report beside the header) and what kind of value it
takes. The values of list columns come from the reference data (shared/data/reference.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ACTIVITIES",
    "ATTENDANCE",
    "SHEETS",
    "STATUS_WORDS",
    "YES_NO_WORDS",
    "Column",
    "Sheet",
    "SheetKind",
    "language",
]

SheetKind = Literal["activities", "attendance"]
ValueKind = Literal["date", "time", "id", "text", "number", "list", "status", "yesno", "int"]
Lang = Literal["nl", "en"]


def language(value: str | None) -> Lang:
    """``en`` for English (an ``Accept-Language`` header or a ``lang`` parameter that starts with
    it), Dutch otherwise: the partners are Dutch organisations."""
    return "en" if (value or "").strip().lower().startswith("en") else "nl"


@dataclass(frozen=True)
class Column:
    key: str
    nl: str
    en: str
    field: str  # the API field it fills, as the write path names it
    kind: ValueKind
    required: bool = True
    list_name: str | None = None  # a reference list (neighbourhoods, age_bands, ...)
    width: int = 18  # in the XLSX template, in characters
    hint_nl: str = ""
    hint_en: str = ""

    def header(self, lang: Lang) -> str:
        return self.en if lang == "en" else self.nl

    def hint(self, lang: Lang) -> str:
        return self.hint_en if lang == "en" else self.hint_nl


@dataclass(frozen=True)
class Sheet:
    kind: SheetKind
    title_nl: str
    title_en: str
    columns: tuple[Column, ...]

    def title(self, lang: Lang) -> str:
        return self.title_en if lang == "en" else self.title_nl

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


# Words for a status and for yes/no, per language. The API's own values are accepted too.
STATUS_WORDS: dict[str, dict[Lang, str]] = {
    "attended": {"nl": "aanwezig", "en": "present"},
    "no_show": {"nl": "afwezig", "en": "absent"},
}
YES_NO_WORDS: dict[bool, dict[Lang, str]] = {
    True: {"nl": "ja", "en": "yes"},
    False: {"nl": "nee", "en": "no"},
}

ATTENDANCE = Sheet(
    kind="attendance",
    title_nl="Aanwezigheid",
    title_en="Attendance",
    columns=(
        Column(
            "date",
            "datum",
            "date",
            "session_start",
            "date",
            width=14,
            hint_nl="De dag van de bijeenkomst, bijvoorbeeld 5-11-2025.",
            hint_en="The day of the session, e.g. 5-11-2025 (day-month-year).",
        ),
        Column(
            "start_time",
            "begintijd",
            "start time",
            "session_start",
            "time",
            width=12,
            hint_nl="Hoe laat de bijeenkomst begon, bijvoorbeeld 10:00.",
            hint_en="When the session started, e.g. 10:00.",
        ),
        Column(
            "activity",
            "activiteit",
            "activity",
            "activity_id",
            "id",
            width=24,
            hint_nl="De code van de activiteit, zoals in het blad Activiteiten.",
            hint_en="The activity's code, as on the Activities sheet.",
        ),
        Column(
            "participant_number",
            "deelnemernummer",
            "participant number",
            "participant.ref",
            "number",
            width=18,
            hint_nl="Uw eigen nummer voor deze deelnemer. Nooit een naam.",
            hint_en="Your own number for this participant. Never a name.",
        ),
        Column(
            "neighbourhood",
            "wijk",
            "neighbourhood",
            "participant.neighbourhood",
            "list",
            list_name="neighbourhoods",
            width=26,
            hint_nl="Waar de deelnemer woont. Weet u het niet: Onbekend.",
            hint_en="Where the participant lives. If you do not know: Unknown.",
        ),
        Column(
            "age_band",
            "leeftijdsgroep",
            "age band",
            "participant.age_band",
            "list",
            list_name="age_bands",
            width=16,
            hint_nl="De leeftijdsgroep van de deelnemer.",
            hint_en="The participant's age band.",
        ),
        Column(
            "status",
            "aanwezigheid",
            "attendance",
            "status",
            "status",
            width=16,
            hint_nl="aanwezig of afwezig (wel aangemeld, niet gekomen).",
            hint_en="present or absent (signed up but did not come).",
        ),
    ),
)

ACTIVITIES = Sheet(
    kind="activities",
    title_nl="Activiteiten",
    title_en="Activities",
    columns=(
        Column(
            "activity_id",
            "activiteitcode",
            "activity code",
            "activity_id",
            "id",
            width=24,
            hint_nl="Een korte code zonder spaties die u zelf kiest, bijvoorbeeld koffie-ochtend.",
            hint_en="A short code without spaces of your choice, e.g. coffee-morning.",
        ),
        Column(
            "title",
            "naam",
            "name",
            "title",
            "text",
            width=32,
            hint_nl="De naam van de activiteit.",
            hint_en="The activity's name.",
        ),
        Column(
            "category",
            "soort",
            "category",
            "category",
            "list",
            list_name="activity_categories",
            width=28,
            hint_nl="Wat voor activiteit het is.",
            hint_en="What kind of activity it is.",
        ),
        Column(
            "aimed_at_connection",
            "gericht op ontmoeting",
            "aimed at meeting people",
            "aimed_at_connection",
            "yesno",
            width=22,
            hint_nl="ja als de activiteit bedoeld is om mensen te ontmoeten of eenzaamheid te voorkomen.",
            hint_en="yes if the activity is meant for meeting people or preventing loneliness.",
        ),
        Column(
            "neighbourhood",
            "wijk",
            "neighbourhood",
            "neighbourhood",
            "list",
            list_name="neighbourhoods",
            width=26,
            hint_nl="Waar de activiteit is.",
            hint_en="Where the activity takes place.",
        ),
        Column(
            "capacity",
            "maximaal aantal deelnemers",
            "capacity",
            "capacity",
            "int",
            required=False,
            width=14,
            hint_nl="Mag leeg blijven.",
            hint_en="May be left empty.",
        ),
        Column(
            "active",
            "actief",
            "active",
            "active",
            "yesno",
            required=False,
            width=10,
            hint_nl="nee als de activiteit gestopt is. Leeg betekent ja.",
            hint_en="no if the activity has stopped. Empty means yes.",
        ),
    ),
)

SHEETS: dict[SheetKind, Sheet] = {"attendance": ATTENDANCE, "activities": ACTIVITIES}
