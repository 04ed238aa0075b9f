"""The shortcut of the totals' exact check (services/metrics/domain/disclosure/witness.py):
cells shown protected by integer points found without a solver. It may only ever say "all
protected" when the linear programs would; and the engine's decisions must not depend on it."""

from __future__ import annotations

import random

import pytest

from services.metrics.domain.disclosure import TOTAL, YearGrid, suppress
from services.metrics.domain.disclosure import engine as engine_module
from services.metrics.domain.disclosure.bounds import Constraint, ranges
from services.metrics.domain.disclosure.witness import all_protected
from tools.disclosure_audit.synthetic import generate, grid_of


def test_cells_that_move_by_two_are_shown_protected():
    # x0 + x1 = 4 (each anywhere in 0..4).
    assert all_protected(2, [Constraint((0, 1), (1.0, 1.0), 4.0, 4.0)], [2, 2])


def test_a_cell_pinned_to_a_range_of_one_is_not_shown():
    # x0 + x1 = 1: each 0..1, a reader knows each within 1.
    assert not all_protected(2, [Constraint((0, 1), (1.0, 1.0), 1.0, 1.0)], [1, 0])


def test_zeros_that_cannot_leave_zero_are_shown_protected():
    # x0 + x1 + x2 = 0 beside x3 + x4 = 5: the zeros are pinned (a zero may be shown).
    constraints = [
        Constraint((0, 1, 2), (1.0, 1.0, 1.0), 0.0, 0.0),
        Constraint((3, 4), (1.0, 1.0), 5.0, 5.0),
    ]
    assert all_protected(5, constraints, [0, 0, 0, 2, 3])


def test_a_zero_that_can_rise_by_one_only_is_not_shown():
    # x0 <= x1 <= 1 with x1 shown... as a relation: x0 + x1 = 1, truth (0, 1).
    assert not all_protected(2, [Constraint((0, 1), (1.0, 1.0), 1.0, 1.0)], [0, 1])


def test_a_repair_along_a_chain_of_relations():
    # A quarter shown (x0 + x1 = 30) and a complement (x0 = x2 + x3, x1 = x4 + x5), with an
    # inequality x3 <= x1: moving x0 needs x1 and one side of each complement to follow.
    constraints = [
        Constraint((0, 1), (1.0, 1.0), 30.0, 30.0),
        Constraint((0, 2, 3), (1.0, -1.0, -1.0), 0.0, 0.0),
        Constraint((1, 4, 5), (1.0, -1.0, -1.0), 0.0, 0.0),
        Constraint((3, 1), (1.0, -1.0), -float("inf"), 0.0),
    ]
    truth = [12, 18, 10, 2, 9, 9]
    assert all_protected(6, constraints, truth)
    assert all(r.protected for r in ranges(6, constraints, [float(t) for t in truth]).values())


@pytest.mark.parametrize("seed", range(40))
def test_never_protected_where_the_linear_programs_say_otherwise(seed):
    """Random small systems of the engine's kind (±1 coefficients, sums and inequalities,
    an integer truth): whenever the shortcut says "all protected", the exact ranges agree."""
    rng = random.Random(seed)
    n = rng.randint(2, 7)
    truth = [rng.choice([0, 0, 1, 2, 3, 5, 12]) for _ in range(n)]
    constraints = []
    for _ in range(rng.randint(1, n)):
        cells = rng.sample(range(n), rng.randint(2, min(4, n)))
        coefs = tuple(rng.choice([1.0, -1.0]) for _ in cells)
        value = sum(c * truth[v] for v, c in zip(cells, coefs, strict=True))
        if rng.random() < 0.6:
            constraints.append(Constraint(tuple(cells), coefs, value, value))
        else:
            constraints.append(Constraint(tuple(cells), coefs, -float("inf"), value))
    exact = ranges(n, constraints, [float(t) for t in truth], stop_when_protected=False)
    if all_protected(n, constraints, truth):
        assert all(r.protected for r in exact.values()), (constraints, truth, exact)


def _totals(seed: int, residents: int, activity: float) -> YearGrid:
    grid = grid_of(generate(seed, residents=residents, activity=activity))
    return YearGrid(
        grid.year,
        {},
        {r: c for r, c in grid.counts.items() if r[1] == TOTAL},
        {r: c for r, c in grid.sections.items() if r[1] == TOTAL},
        {r: v for r, v in grid.statistics.items() if r[1] == TOTAL},
    )


def test_the_totals_decisions_do_not_depend_on_the_shortcut(monkeypatch):
    """Totals-only years of several sizes: the same decision for every figure with the
    search (the shortcut before the exact check, and the points that spare its programs) and
    without it (the linear programs alone), and the shortcut taken in some."""
    years = [_totals(s, r, a) for s, r, a in [(1, 1500, 1.0), (4, 1500, 0.3), (7, 5000, 1.0)]]
    years += [_totals(s, r, a) for s, r, a in [(2, 300, 0.5), (3, 60, 0.3), (6, 40, 1.0)]]
    taken = []
    spared = []
    original = engine_module._Model.shown_protected
    search = engine_module._Model.witness

    def spy(self: engine_module._Model, scope: engine_module.Scope, seen) -> bool:
        taken.append(original(self, scope, seen))
        return taken[-1]

    def counted(self: engine_module._Model, component, block, mine, seen) -> list[int]:
        left = search(self, component, block, mine, seen)
        spared.append(len(mine) - len(left))
        return left

    monkeypatch.setattr(engine_module._Model, "shown_protected", spy)
    monkeypatch.setattr(engine_module._Model, "witness", counted)
    with_shortcut = [suppress(g, 10) for g in years]
    assert any(taken)
    assert not all(taken)
    assert sum(spared) > 0  # the search spared the programs some cells
    monkeypatch.setattr(engine_module._Model, "shown_protected", lambda self, scope, seen: False)
    monkeypatch.setattr(
        engine_module._Model, "witness", lambda self, component, block, mine, seen: mine
    )
    engine_module._small_ranges.cache_clear()
    without = [suppress(g, 10) for g in years]
    for a, b in zip(with_shortcut, without, strict=True):
        assert dict(a.figures) == dict(b.figures)
        assert a.unprotected == b.unprotected == ()


def test_a_year_without_counts_is_decided_by_rules_1_to_3_alone():
    empty = YearGrid(2024, {}, {})
    assert dict(suppress(empty, 10).figures) == dict(suppress(empty, 10, secondary=False).figures)
