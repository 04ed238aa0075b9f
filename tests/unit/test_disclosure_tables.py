"""Points of the exact check built along the tables' dimensions
(services/metrics/domain/disclosure/tables.py): every point it returns is feasible, it shows
most hidden cells of a year's components, and the engine's decisions do not depend on it."""

from __future__ import annotations

import numpy as np
import pytest

from services.metrics.domain.disclosure import engine as engine_module
from services.metrics.domain.disclosure import suppress
from services.metrics.domain.disclosure.bounds import EPS, Constraint
from services.metrics.domain.disclosure.tables import Tables, figure_moves, period_moves
from tools.disclosure_audit.synthetic import generate, grid_of


def _components(seed: int, residents: int) -> tuple[engine_module._Model, list]:
    """The components of hidden cells after rules 1-3 of a synthetic year (every breakdown)."""
    model = engine_module._Model(grid_of(generate(seed, residents=residents)), 10)
    model.primary()
    values = np.asarray(model.value, dtype=np.float64)
    return model, model._components("everything", None, (values, values.copy()))


def _tables(model: engine_module._Model, component: list[int], block: list[Constraint]) -> Tables:
    refs = [model.refs[c] for c in component]
    return Tables(
        refs,
        block,
        [model.value[c] for c in component],
        {by: model.keys(by) for by in sorted({ref[1] for ref in refs})},
        model.periods,
    )


def _holds(block: list[Constraint], x: list[int]) -> bool:
    """Every relation and x >= 0, in integer arithmetic, independently of the module."""
    point = np.asarray(x, dtype=np.int64)
    if (point < 0).any():
        return False
    rows = np.repeat(np.arange(len(block)), [len(c.variables) for c in block])
    variables = np.asarray([v for c in block for v in c.variables], dtype=np.int64)
    coefficients = np.asarray([int(a) for c in block for a in c.coefficients], dtype=np.int64)
    value = np.zeros(len(block), dtype=np.int64)
    np.add.at(value, rows, coefficients * point[variables])
    lower = np.asarray([c.lower for c in block])
    upper = np.asarray([c.upper for c in block])
    return bool(((value >= lower) & (value <= upper)).all())


def test_every_move_is_a_feasible_point_and_most_hidden_cells_have_one():
    model, batch = _components(1, 300)
    asked = shown = 0
    for component, block, _, _ in batch:
        if len(component) < 200:
            continue
        tables = _tables(model, component, block)
        truth = [model.value[c] for c in component]
        for v in range(0, len(component), 11):
            amount = 2 if truth[v] < 2 else -2
            asked += 1
            delta = tables.move(v, amount)
            if delta is None:
                continue
            shown += 1
            assert delta[v] == amount
            point = list(truth)
            for u, d in delta.items():
                point[u] += d
            assert _holds(block, point), (model.refs[component[v]], delta)
    assert asked > 100
    # Without product moves (or with moves that break a relation) this share is 0.
    assert shown > asked // 2, (shown, asked)


def test_show_widens_only_to_values_of_feasible_points():
    model, batch = _components(2, 300)
    component, block, _, _ = max(batch, key=lambda part: len(part[0]))
    tables = _tables(model, component, block)
    truth = np.asarray([model.value[c] for c in component], dtype=np.float64)
    low, high = truth.copy(), truth.copy()
    asked = list(range(0, len(component), 5))
    tables.show(asked, low, high)
    widened = int((high[asked] - low[asked] >= 2 - EPS).sum())
    assert widened > len(asked) // 2, (widened, len(asked))
    # The search leaves the point it starts from as it found it.
    assert np.array_equal(tables.truth, truth)
    assert (low >= 0).all()


def test_moves_keep_their_dimension_adding_up():
    periods = ["2025", "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"] + [
        f"2025-{m:02d}" for m in range(1, 13)
    ]
    for period in periods:
        for move in period_moves(periods, period):
            u = dict(move)
            assert u[period] == 1
            quarters = [u.get(q, 0) for q in periods[1:5]]
            assert u.get("2025", 0) == sum(quarters)
            for q in range(4):
                months = [u.get(m, 0) for m in periods[5 + 3 * q : 8 + 3 * q]]
                assert quarters[q] == sum(months)
    for move in figure_moves("not_converted"):
        u = dict(move)
        assert u.get("referrals", 0) == u.get("converted", 0) + u.get("not_converted", 0)


@pytest.mark.parametrize(("seed", "residents", "k"), [(0, 80, 3), (5, 60, 10), (7, 120, 5)])
def test_the_decisions_do_not_depend_on_the_tables(monkeypatch, seed, residents, k):
    """Components of these years are small: the search is switched on for every one of them
    and compared with the programs alone (a repair of an unprotected cell included)."""
    g = grid_of(generate(seed, residents=residents, organisations=3, keys=3))
    monkeypatch.setattr(engine_module, "TABLES_FROM", 10**9)
    without = suppress(g, k=k, exact=True)
    monkeypatch.setattr(engine_module, "TABLES_FROM", 0)
    calls = []
    original = engine_module.Tables.show
    monkeypatch.setattr(
        engine_module.Tables,
        "show",
        lambda self, *args: calls.append(1) or original(self, *args),
    )
    with_tables = suppress(g, k=k, exact=True)
    assert calls, "the search was not used"
    assert dict(with_tables) == dict(without)
    assert with_tables.unprotected == without.unprotected
