"""A batch item's scope check (one set test per item) says what Principal.has says of each scope
that may write its kind, for every combination of a key's scopes."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

from services.registrations.domain.decide import Registrations
from services.registrations.service_layer.writes import KIND_SCOPES, RegistrationWrites
from shared.auth import Principal, Scope
from shared.reference import load_reference

WRITES = RegistrationWrites(Registrations(load_reference()))


def test_the_scope_check_agrees_with_principal_has_for_every_key() -> None:
    values = [s.value for s in Scope]
    checked = 0
    for n in range(len(values) + 1):
        for held in itertools.combinations(values, n):
            principal = Principal("org", "key", frozenset(held))
            for kind, scopes in KIND_SCOPES.items():
                item: Any = SimpleNamespace(kind=kind)
                allowed = any(principal.has(s) for s in scopes)
                problem = WRITES.scope_problem(principal, item)
                assert (problem is None) == allowed, (kind, held)
                if not allowed:
                    assert problem is not None
                    assert "lacks the scope" in problem
                checked += 1
    assert checked == 2 ** len(values) * len(KIND_SCOPES)
