"""Spreadsheet uploads and ticked lists against the real registrations service (PostgreSQL,
Kafka): the same write path and events as the API, row ids from content, all-or-nothing unless
asked, every problem named by row and column in Dutch (English on request), conflicts on the
row, templates that parse back, volunteer keys that do only what they may."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, time
from typing import Any

import orjson
import pytest
from openpyxl import load_workbook

from shared.pseudonym import Pseudonymiser
from tests.conftest import SECRET, TOPIC_PREFIX, Partner, read_records

pytestmark = pytest.mark.integration

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = "datum;begintijd;activiteit;deelnemernummer;wijk;leeftijdsgroep;aanwezigheid"


def csv_file(*rows: str, header: str = HEADER) -> bytes:
    return ("\ufeff" + "\r\n".join([header, *rows]) + "\r\n").encode()


async def new_partner(make_partner: Any, registrations: Any, scopes: str = "activities,registrations") -> tuple[Partner, str]:  # fmt: skip
    partner = await make_partner(scopes=scopes)
    activity = f"koffie-{uuid.uuid4().hex[:6]}"
    r = await registrations.put(
        f"/v1/activities/{activity}",
        headers=partner.headers,
        json={"title": "Koffie", "category": "meeting", "aimed_at_connection": True, "neighbourhood": "delfgauw"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return partner, activity


def register(activity: str, *, day: str = "4-3-2025", start: str = "10:00", n: int = 3, status: str = "aanwezig") -> list[str]:  # fmt: skip
    return [f"{day};{start};{activity};{100 + i};Delfgauw;75+;{status}" for i in range(n)]


async def upload(client: Any, partner: Partner, data: bytes, kind: str = "attendance", **params: Any) -> Any:  # fmt: skip
    return await client.post(
        f"/v1/uploads/{kind}",
        content=data,
        params=params,
        headers={**partner.headers, "content-type": "text/csv"},
    )


async def attendance_rows(pool: Any, org: str) -> list[Any]:
    return await pool.fetch(
        "SELECT attendance_id, participant_id, status FROM registrations.attendance "
        "WHERE organisation_id = $1 ORDER BY attendance_id",
        org,
    )


async def test_an_uploaded_register_becomes_the_same_events_as_the_api(
    registrations, make_partner, pool
):
    partner, activity = await new_partner(make_partner, registrations)

    r = await upload(registrations, partner, csv_file(*register(activity)))

    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["rows"], report["created"], report["unchanged"], report["saved"]) == (
        3,
        3,
        0,
        True,
    )
    assert report["problems"] == []
    assert report["message"].startswith("3 regels gelezen: 3 nieuw opgeslagen")
    rows = await attendance_rows(pool, partner.organisation_id)
    assert len(rows) == 3
    # The id is a keyed hash of (activity, session start, number): the number cannot be read
    # back from it, and the same row always gives the same id.
    keyed = Pseudonymiser(SECRET)
    ids = {row["attendance_id"] for row in rows}
    assert ids == {
        "att-" + keyed.attendance(partner.organisation_id, activity, "2025-03-04T09:00:00+00:00", str(100 + i))[:32]
        for i in range(3)
    }  # fmt: skip
    assert {row["participant_id"] for row in rows} == {
        keyed.participant(partner.organisation_id, str(100 + i)) for i in range(3)
    }

    def event(record: Any) -> dict[str, Any]:
        # Other tests put poison messages on the session's topics on purpose.
        try:
            doc = orjson.loads(record.value or b"")
        except orjson.JSONDecodeError:
            return {}
        return doc if isinstance(doc, dict) and isinstance(doc.get("data"), dict) else {}

    records = await read_records(
        f"{TOPIC_PREFIX}registrations",
        until=lambda rs: ids <= {event(x).get("data", {}).get("attendance_id") for x in rs},
        timeout=60,
    )
    ours = [e for e in map(event, records) if e and e["data"].get("attendance_id") in ids]
    assert len(ours) == 3
    assert {e["type"] for e in ours} == {"nl.verbinding.attendance.recorded.v1"}
    assert {e["data"]["session_start"] for e in ours} == {"2025-03-04T10:00:00+01:00"}
    assert {e["data"]["participant"]["neighbourhood"] for e in ours} == {"delfgauw"}


async def test_the_same_file_twice_adds_nothing_and_a_corrected_file_adds_only_the_correction(
    registrations, make_partner, pool
):
    partner, activity = await new_partner(make_partner, registrations)
    good = register(activity, n=4)
    bad = f"4-3-2025;10:00;{activity};200;Noord;75+;aanwezig"

    first = await upload(registrations, partner, csv_file(*good, bad))
    assert first.status_code == 422, first.text
    body = first.json()
    assert body["error"] == "validation_failed"
    assert body["report"]["saved"] is False
    [problem] = body["report"]["problems"]
    assert (problem["row"], problem["column"], problem["column_letter"], problem["code"]) == (6, "wijk", "E", "list_invalid")  # fmt: skip
    assert problem["message"].startswith(
        "'Noord' staat niet in de lijst. Kies een van: Pijnacker-Centrum"
    )
    assert body["details"] == [{"field": "row 6, wijk", "message": problem["message"]}]
    assert await attendance_rows(pool, partner.organisation_id) == []  # nothing written

    fixed = bad.replace("Noord", "Pijnacker-Noord")
    second = await upload(registrations, partner, csv_file(*good, fixed))
    assert second.status_code == 200, second.text
    assert (second.json()["created"], second.json()["unchanged"]) == (5, 0)

    again = await upload(registrations, partner, csv_file(*good, fixed))
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 5)

    more = f"4-3-2025;10:00;{activity};201;Pijnacker-Noord;26-64;afwezig"
    third = await upload(registrations, partner, csv_file(*good, fixed, more))
    assert (third.json()["created"], third.json()["unchanged"]) == (1, 5)
    assert len(await attendance_rows(pool, partner.organisation_id)) == 6


async def test_a_changed_status_is_a_conflict_on_its_row_in_dutch_and_english(
    registrations, make_partner, pool
):
    partner, activity = await new_partner(make_partner, registrations)
    rows = register(activity, n=2)
    assert (await upload(registrations, partner, csv_file(*rows))).status_code == 200
    changed = [rows[0], rows[1].replace("aanwezig", "afwezig")]

    r = await upload(registrations, partner, csv_file(*changed))
    assert r.status_code == 422, r.text
    [problem] = r.json()["report"]["problems"]
    assert (problem["row"], problem["column"], problem["code"]) == (
        3,
        "aanwezigheid",
        "conflict_status",
    )
    assert "al opgeslagen als aanwezig" in problem["message"]
    assert r.json()["report"]["saved"] is False

    en = await upload(registrations, partner, csv_file(*changed), lang="en")
    assert "already recorded as present" in en.json()["report"]["problems"][0]["message"]
    header = await registrations.post(
        "/v1/uploads/attendance",
        content=csv_file(*changed),
        headers={
            **partner.headers,
            "content-type": "text/csv",
            "accept-language": "en-GB,en;q=0.8",
        },
    )
    assert header.json()["report"]["lang"] == "en"
    statuses = [row["status"] for row in await attendance_rows(pool, partner.organisation_id)]
    assert sorted(statuses) == ["attended", "attended"]  # nothing changed


async def test_write_valid_rows_writes_the_good_rows_and_reports_the_rest(
    registrations, make_partner, pool
):
    partner, activity = await new_partner(make_partner, registrations)
    rows = [
        *register(activity, n=3),
        f"4-3-2025;10:00;onbekend-{activity};300;Delfgauw;75+;aanwezig",
    ]

    r = await upload(registrations, partner, csv_file(*rows), write_valid_rows="true")

    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["saved"], report["created"], report["rejected"]) == (True, 3, 1)
    [problem] = report["problems"]
    assert (problem["row"], problem["column"], problem["code"]) == (
        5,
        "activiteit",
        "unknown_activity",
    )
    assert activity in problem["message"]
    assert len(await attendance_rows(pool, partner.organisation_id)) == 3


async def test_a_conflict_found_by_the_write_path_rolls_the_whole_file_back(
    registrations, make_partner, pool
):
    """Some problems only the write path can see (a row recorded before with another status):
    then, too, nothing of the file is written."""
    partner, activity = await new_partner(make_partner, registrations)
    first = register(activity, n=1)
    assert (await upload(registrations, partner, csv_file(*first))).status_code == 200
    rows = [first[0].replace("aanwezig", "afwezig"), *register(activity, start="14:00", n=3)]

    r = await upload(registrations, partner, csv_file(*rows))

    assert r.status_code == 422
    assert r.json()["report"]["created"] == 0
    assert len(await attendance_rows(pool, partner.organisation_id)) == 1


async def test_an_xlsx_template_filled_in_uploads_with_excel_dates_and_times(
    registrations, make_partner, pool
):
    partner, activity = await new_partner(make_partner, registrations)
    t = await registrations.get("/v1/templates/attendance.xlsx", headers=partner.headers)
    assert t.status_code == 200, t.text
    assert t.headers["content-type"] == XLSX
    assert 'filename="aanwezigheid.xlsx"' in t.headers["content-disposition"]
    book = load_workbook(io.BytesIO(t.content))
    sheet = book.worksheets[0]
    assert [c.value for c in sheet[1]] == HEADER.split(";")
    lists = book["Lijsten"]
    assert lists.sheet_state == "hidden"
    assert activity in [c.value for c in lists["C"]]  # the organisation's own codes
    formulas = {str(v.sqref): v.formula1 for v in sheet.data_validations.dataValidation}
    assert formulas["E2:E2001"] == "'Lijsten'!$E$2:$E$19"
    sheet.append([datetime(2025, 3, 4), time(10, 0), activity, "0042", "Pijnacker-Noord", "75+", "aanwezig"])  # fmt: skip
    sheet.append([45720, 0.4166666667, activity, 43, "Onbekend", "onbekend", "afwezig"])
    out = io.BytesIO()
    book.save(out)

    r = await registrations.post(
        "/v1/uploads/attendance",
        files={"file": ("aanwezigheid.xlsx", out.getvalue(), XLSX)},
        headers=partner.headers,
    )

    assert r.status_code == 200, r.text
    assert (r.json()["format"], r.json()["created"]) == ("xlsx", 2)
    csv_template = await registrations.get(
        "/v1/templates/activities.csv", params={"lang": "en"}, headers=partner.headers
    )
    assert csv_template.content.decode("utf-8-sig").startswith("activity code;name;category")


async def test_hostile_files_are_refused_with_a_clear_message_and_nothing_written(
    registrations, make_partner, pool
):
    partner, activity = await new_partner(make_partner, registrations)
    cases = {
        "macro.xlsm": (b"PK\x03\x04whatever", "macros", 422),
        "old.xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old_excel", 422),
        "latin1.csv": (
            csv_file(*register(activity)).replace(b"Delfgauw", "Delfg\xe5uw".encode("latin-1")),
            "encoding",
            422,
        ),
        "big.csv": (b"x" * 1_500_000, "file_too_large", 413),
        # Once answered with a 500: a header line of one cell beyond the csv module's limit,
        # and UTF-32 (its byte-order mark starts like UTF-16's).
        "one-cell.csv": (b"x" * 300_000, "csv_malformed", 422),
        "utf32.csv": (
            csv_file(*register(activity)).decode("utf-8-sig").encode("utf-32"),
            "binary",
            422,
        ),
    }
    for name, (data, code, status) in cases.items():
        r = await registrations.post(
            "/v1/uploads/attendance",
            content=data,
            params={"filename": name},
            headers={**partner.headers, "content-type": "application/octet-stream"},
        )
        assert r.status_code == status, (name, r.text)
        assert [p["code"] for p in r.json()["report"]["problems"]] == [code], name
        assert (
            r.json()["report"]["message"] == "Het bestand is niet gelezen. Er is niets opgeslagen."
        )
    # Beyond the service's body limit the shared 413 answers before the upload is read.
    huge = await upload(registrations, partner, b"x" * 2_500_000)
    assert huge.status_code == 413
    assert await attendance_rows(pool, partner.organisation_id) == []


async def test_a_column_that_is_not_in_the_template_is_refused(registrations, make_partner, pool):
    """A name column would bring names onto the platform: the file is not read at all."""
    partner, activity = await new_partner(make_partner, registrations)
    rows = [f"Jan Jansen;{row}" for row in register(activity)]

    r = await upload(registrations, partner, csv_file(*rows, header=f"naam;{HEADER}"))

    assert r.status_code == 422
    [problem] = r.json()["report"]["problems"]
    assert problem["code"] == "unknown_column"
    assert "'naam'" in problem["message"]
    assert "Jan Jansen" not in r.text
    assert await attendance_rows(pool, partner.organisation_id) == []


async def test_an_activities_file_puts_each_activity(registrations, make_partner):
    partner = await make_partner(scopes="activities,registrations")
    code = f"wandel-{uuid.uuid4().hex[:6]}"
    data = csv_file(
        f"{code};Wandelgroep;Sport en bewegen;ja;Delfgauw;15;",
        f"{code}-2;Taalcafé;learning;nee;nootdorp-centrum;;nee",
        header="activiteitcode;naam;soort;gericht op ontmoeting;wijk;maximaal aantal deelnemers;actief",
    )

    r = await upload(registrations, partner, data, kind="activities")
    again = await upload(registrations, partner, data, kind="activities")

    assert r.status_code == 200, r.text
    assert (r.json()["created"], again.json()["created"], again.json()["unchanged"]) == (2, 0, 2)
    listed = (await registrations.get("/v1/activities", headers=partner.headers)).json()[
        "activities"
    ]
    assert [(a["activity_id"], a["category"], a["aimed_at_connection"], a["capacity"], a["active"]) for a in listed] == [
        (code, "sport", True, 15, True),
        (f"{code}-2", "learning", False, None, False),
    ]  # fmt: skip


async def test_a_ticked_list_and_an_uploaded_register_of_the_same_session_count_once(
    registrations, make_partner, pool
):
    partner, activity = await new_partner(make_partner, registrations)
    session = {
        "activity_id": activity,
        "date": "2025-03-04",
        "start_time": "10:00",
        "participants": [
            {"number": str(100 + i), "neighbourhood": "delfgauw", "age_band": "75+", "status": "attended"}
            for i in range(3)
        ],
    }  # fmt: skip

    listed = await registrations.post("/v1/attendance-lists", json=session, headers=partner.headers)
    uploaded = await upload(registrations, partner, csv_file(*register(activity, n=3)))

    assert listed.status_code == 200, listed.text
    assert (listed.json()["format"], listed.json()["created"]) == ("list", 3)
    assert (uploaded.json()["created"], uploaded.json()["unchanged"]) == (0, 3)
    bad = {**session, "participants": [{**session["participants"][0], "neighbourhood": "nergens"}]}
    refused = await registrations.post("/v1/attendance-lists", json=bad, headers=partner.headers)
    assert refused.status_code == 422
    assert refused.json()["report"]["problems"][0]["row"] == 1
    assert refused.json()["report"]["problems"][0]["column"] == "wijk"
    assert len(await attendance_rows(pool, partner.organisation_id)) == 3


async def test_the_reference_lists_come_with_dutch_and_english_names(registrations, make_partner):
    partner = await make_partner(scopes="attendance")
    r = await registrations.get("/v1/reference", headers=partner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["neighbourhoods"][-1] == {"value": "unknown", "nl": "Onbekend", "en": "Unknown"}
    assert {"value": "meeting", "nl": "Ontmoeting", "en": "Meeting people"} in body["activity_categories"]  # fmt: skip


# ------------------------------------------------------------------------------- volunteer keys


async def test_an_organisation_issues_lists_and_revokes_volunteer_keys(
    registrations, make_partner, pool
):
    coordinator = await make_partner(scopes="activities,registrations,keys")
    issued = await registrations.post(
        "/v1/keys", json={"label": "tablet buurthuis"}, headers=coordinator.headers
    )
    assert issued.status_code == 201, issued.text
    key = issued.json()
    assert key["scopes"] == ["attendance"]
    assert key["created_by"] == coordinator.key_id
    assert issued.headers["cache-control"] == "no-store"
    volunteer = {"Authorization": f"Bearer {key['key']}"}
    stored = await pool.fetchrow("SELECT * FROM platform.api_keys WHERE id = $1", key["key_id"])
    assert key["key"].encode() not in bytes(stored["key_hash"])  # hashed, as every key

    # The volunteer keeps activities and records attendance ...
    activity = f"koffie-{uuid.uuid4().hex[:6]}"
    put = await registrations.put(f"/v1/activities/{activity}", headers=volunteer, json={"title": "Koffie", "category": "meeting", "aimed_at_connection": True, "neighbourhood": "delfgauw"})  # fmt: skip
    assert put.status_code == 201, put.text
    up = await registrations.post("/v1/uploads/attendance", content=csv_file(*register(activity)), headers={**volunteer, "content-type": "text/csv"})  # fmt: skip
    assert up.status_code == 200, up.text
    # ... and nothing else: no registrations, no keys, no registration items in a batch.
    reg = await registrations.post("/v1/registrations", headers=volunteer, json={"registration_id": "r-1", "activity_id": activity, "participant": {"ref": "1", "neighbourhood": "delfgauw", "age_band": "75+"}, "registered_at": "2025-03-01T10:00:00+01:00"})  # fmt: skip
    assert reg.status_code == 403
    assert (await registrations.get("/v1/keys", headers=volunteer)).status_code == 403
    batch = await registrations.post("/v1/batch", headers=volunteer, json={"items": [{"kind": "registration", "body": {"registration_id": "r-2", "activity_id": activity, "participant": {"ref": "1", "neighbourhood": "delfgauw", "age_band": "75+"}, "registered_at": "2025-03-01T10:00:00+01:00"}}]})  # fmt: skip
    assert batch.json()["results"][0]["status"] == 422
    assert "registrations" in batch.text

    listed = (await registrations.get("/v1/keys", headers=coordinator.headers)).json()["keys"]
    assert [(k["key_id"], k["label"], k["revoked_at"]) for k in listed] == [(key["key_id"], "tablet buurthuis", None)]  # fmt: skip
    assert "key" not in listed[0]

    # Another organisation cannot revoke it; the organisation's own partner key is not revocable here.
    other = await make_partner(scopes="keys")
    assert (await registrations.delete(f"/v1/keys/{key['key_id']}", headers=other.headers)).status_code == 404  # fmt: skip
    assert (await registrations.delete(f"/v1/keys/{coordinator.key_id}", headers=coordinator.headers)).status_code == 404  # fmt: skip

    revoked = await registrations.delete(f"/v1/keys/{key['key_id']}", headers=coordinator.headers)
    assert revoked.status_code == 204
    assert (await registrations.get("/v1/activities", headers=volunteer)).status_code == 401
    again = await registrations.delete(f"/v1/keys/{key['key_id']}", headers=coordinator.headers)
    assert again.status_code == 404
    assert (
        await registrations.get("/v1/activities", headers=coordinator.headers)
    ).status_code == 200


async def test_only_the_registrations_role_may_issue_volunteer_keys_and_only_those(pool, database):
    """The service's role calls the platform functions; it still cannot write the table, and
    the other services' roles cannot call the functions."""
    import asyncpg

    from shared.db_roles import service_dsn

    org = f"org-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as admin:
        await admin.execute("INSERT INTO platform.organisations (id, name) VALUES ($1, $1)", org)
    conn = await asyncpg.connect(service_dsn(database, "registrations"))
    try:
        await conn.execute("SELECT platform.issue_volunteer_key($1, 'k-test-1', 'h1'::bytea, NULL, NULL)", org)  # fmt: skip
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO platform.api_keys (id, organisation_id, key_hash, scopes) VALUES ('k2', $1, 'h2'::bytea, '{admin}')", org)  # fmt: skip
    finally:
        await conn.close()
    assert await pool.fetchval("SELECT scopes FROM platform.api_keys WHERE id = 'k-test-1'") == ["attendance"]  # fmt: skip
    for service in ("referrals", "metrics"):
        other = await asyncpg.connect(service_dsn(database, service))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await other.execute("SELECT platform.issue_volunteer_key($1, 'k-x', 'hx'::bytea, NULL, NULL)", org)  # fmt: skip
        finally:
            await other.close()


async def test_the_cli_issues_lists_and_revokes_volunteer_keys(
    registrations, make_partner, test_env
):
    from tests.integration.test_access_key_rotation import cli

    partner = await make_partner(scopes="activities,registrations")
    issued = await cli(
        test_env, "partner", "volunteer-key", partner.organisation_id, "--label", "tablet"
    )
    key = issued[-1]  # the key is the last line, as for `partner create`
    headers = {"Authorization": f"Bearer {key}"}
    assert (await registrations.get("/v1/activities", headers=headers)).status_code == 200
    assert (await registrations.get("/v1/registrations/x", headers=headers)).status_code == 403
    key_id = key.split("_")[1]
    listed = await cli(test_env, "partner", "keys", partner.organisation_id)
    assert any(line.startswith(key_id) and "active" in line and "tablet" in line for line in listed)

    await cli(test_env, "partner", "revoke", key_id)

    assert (await registrations.get("/v1/activities", headers=headers)).status_code == 401
    assert "revoked" in " ".join(await cli(test_env, "partner", "keys", partner.organisation_id))
