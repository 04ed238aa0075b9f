"""Pseudonyms (domain.md §3): keyed, stable, scoped to the organisation unless a resident token
links one person across organisations; a key per purpose derived from one master secret with
HKDF (RFC 5869); the secret never shows."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.pseudonym import PURPOSES, Pseudonymiser

SECRET = "unit-secret-9f2c1e7a4b6d8e0f1a3c5e7b9d2f4a6c"
OTHER_SECRET = "unit-secret-different-0123456789abcdef0123"


def hkdf_sha256(master: bytes, info: bytes) -> bytes:
    """RFC 5869 written out (no salt = HashLen zero bytes; 32 bytes = one block of output),
    independently of the library the code uses."""
    prk = hmac.new(b"\0" * 32, master, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def independent(secret: str, purpose: str, message: str) -> str:
    key = hkdf_sha256(secret.encode(), PURPOSES[purpose])
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def test_known_vector_pins_the_derivation() -> None:
    """Changing a purpose's ``info``, the KDF or the message format changes every pseudonym a
    platform has stored: this vector must never change (docs/privacy.md)."""
    p = Pseudonymiser("verbinding-known-vector-master-secret-0001")

    assert PURPOSES == {
        "participant": b"verbinding/v1/pseudonym/participant",
        "person": b"verbinding/v1/pseudonym/person",
        "resident": b"verbinding/v1/pseudonym/resident",
        "idempotency": b"verbinding/v1/digest/idempotency",
        "attendance": b"verbinding/v1/id/attendance",
        "webhook-secrets": b"verbinding/v1/key/webhook-secrets",
    }
    assert p.participant("buurtwerk", "client-0042") == (
        "d0d34e61d068c28742a6b838d9d47b624cda87c0398c002c5f0f63f6bfec9f62"
    )
    assert p.person("buurtwerk", "client-0042") == (
        "ac3fea6090d94361da970e474d7424f8ec8daca5094286c32aee3e3bdd531f2a"
    )
    assert p.resident("tok-77") == (
        "9da7c725abc45188aac462b231615b21aabbd9a42a7f9d500abe7619358f3ee4"
    )
    assert p.digest(b'{"ref": "client-0042"}') == (
        "08d611eeaf3a02ed4f2fd070a3f7a6129cdaed2fc60de43841ad84e6d5f7f24b"
    )
    # The ids of uploaded attendance rows: a changed vector makes every re-upload a new row.
    assert p.attendance("buurtwerk", "koffie", "2025-03-04T09:00:00+00:00", "0042") == (
        "d9d02fedbde34b4e53c2161f8b07ad068c880282ebc1444bcac21ff4546ac372"
    )


def test_equals_hmac_sha256_of_organisation_colon_ref_under_the_participant_key() -> None:
    p = Pseudonymiser(SECRET)

    assert p.participant("buurtwerk", "client-0042") == independent(
        SECRET, "participant", "buurtwerk:client-0042"
    )


def test_resident_pseudonym_equals_hmac_of_resident_colon_token_under_its_key() -> None:
    p = Pseudonymiser(SECRET)

    assert p.resident("tok-77") == independent(SECRET, "resident", "resident:tok-77")


def test_person_follows_the_participant_rule_under_a_key_of_its_own() -> None:
    p = Pseudonymiser(SECRET)

    assert p.person("ggd", "vrijwilliger-3") == independent(SECRET, "person", "ggd:vrijwilliger-3")


def test_every_purpose_has_its_own_key() -> None:
    """The same input under two purposes never gives the same value: a trainer and a
    participant with one reference are not linked, and no digest is a pseudonym."""
    p = Pseudonymiser(SECRET)

    values = {
        p.participant("org", "x"),
        p.person("org", "x"),
        p.digest(b"org:x"),
        independent(SECRET, "resident", "org:x"),
        independent(SECRET, "attendance", "org:x"),
    }
    assert len(values) == 5
    assert p.participant("org", "x") != hmac.new(SECRET.encode(), b"org:x", "sha256").hexdigest()


def test_attendance_identity_is_hmac_of_its_parts_under_its_own_key() -> None:
    p = Pseudonymiser(SECRET)

    assert p.attendance("org", "act", "2025-03-04T09:00:00+00:00", "7") == independent(
        SECRET, "attendance", "org\x1fact\x1f2025-03-04T09:00:00+00:00\x1f7"
    )
    assert p.attendance("org", "act", "2025-03-04T09:00:00+00:00", "7") != p.attendance(
        "org", "act", "2025-03-04T09:00:00+00:00", "8"
    )


def test_non_ascii_refs_are_utf8_encoded() -> None:
    p = Pseudonymiser(SECRET)

    assert p.participant("org", "Zoë-Ærø") == independent(SECRET, "participant", "org:Zoë-Ærø")


def test_stable_for_the_same_inputs_across_instances() -> None:
    first = Pseudonymiser(SECRET).participant("buurtwerk", "client-0042")
    second = Pseudonymiser(SECRET.encode()).participant("buurtwerk", "client-0042")

    assert first == second
    assert len(first) == 64
    assert set(first) <= set("0123456789abcdef")


def test_same_ref_in_two_organisations_gives_two_pseudonyms() -> None:
    p = Pseudonymiser(SECRET)

    assert p.participant("buurtwerk", "client-1") != p.participant("huisarts", "client-1")


def test_different_secret_gives_a_different_pseudonym() -> None:
    """Keyed: without the secret nobody can recompute a pseudonym from a guessed reference."""
    assert Pseudonymiser(SECRET).participant("o", "r") != Pseudonymiser(OTHER_SECRET).participant(
        "o", "r"
    )
    assert Pseudonymiser(SECRET).resident("t") != Pseudonymiser(OTHER_SECRET).resident("t")
    assert Pseudonymiser(SECRET).participant("o", "r") != hashlib.sha256(b"o:r").hexdigest()


def test_resident_pseudonym_is_the_same_whichever_organisation_sends_it() -> None:
    """Counting unique residents across organisations depends on this."""
    p = Pseudonymiser(SECRET)

    assert p.resident("tok-77") == p.resident("tok-77")
    assert p.resident("tok-77") != p.resident("tok-78")
    assert p.resident("tok-77") != p.participant("buurtwerk", "tok-77")


def test_digest_is_keyed() -> None:
    body = b'{"ref": "client-0042"}'
    key = hkdf_sha256(SECRET.encode(), PURPOSES["idempotency"])

    assert Pseudonymiser(SECRET).digest(body) == hmac.new(key, body, hashlib.sha256).hexdigest()
    assert Pseudonymiser(SECRET).digest(body) != hashlib.sha256(body).hexdigest()


def test_repr_and_str_never_show_the_secret() -> None:
    p = Pseudonymiser(SECRET)

    assert SECRET not in repr(p)
    assert SECRET not in str(p)
    assert SECRET not in f"{p!r} {p}"
    assert SECRET[:12] not in repr(p)


@pytest.mark.parametrize("empty", ["", b""])
def test_an_empty_secret_is_refused(empty: str | bytes) -> None:
    with pytest.raises(ValueError, match="a pseudonymisation secret is required"):
        Pseudonymiser(empty)
