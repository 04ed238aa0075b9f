"""Pseudonyms (domain.md §3): keyed, stable, scoped to the organisation unless a resident token
links one person across organisations; the secret never shows."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.pseudonym import Pseudonymiser

SECRET = "unit-secret-9f2c1e7a4b6d8e0f1a3c5e7b9d2f4a6c"
OTHER_SECRET = "unit-secret-different-0123456789abcdef0123"


def independent(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_equals_hmac_sha256_of_organisation_colon_ref() -> None:
    p = Pseudonymiser(SECRET)

    assert p.participant("buurtwerk", "client-0042") == independent(SECRET, "buurtwerk:client-0042")


def test_resident_pseudonym_equals_hmac_of_resident_colon_token() -> None:
    p = Pseudonymiser(SECRET)

    assert p.resident("tok-77") == independent(SECRET, "resident:tok-77")


def test_person_follows_the_participant_rule() -> None:
    p = Pseudonymiser(SECRET)

    assert p.person("ggd", "vrijwilliger-3") == independent(SECRET, "ggd:vrijwilliger-3")


def test_non_ascii_refs_are_utf8_encoded() -> None:
    p = Pseudonymiser(SECRET)

    assert p.participant("org", "Zoë-Ærø") == independent(SECRET, "org:Zoë-Ærø")


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

    assert (
        Pseudonymiser(SECRET).digest(body)
        == hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
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
