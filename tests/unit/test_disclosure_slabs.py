"""Programs over the cells of a few periods (services/metrics/domain/disclosure/slabs.py):
every point they count is a feasible point of the whole component, they show the cells the
tables' moves leave on a demo-sized year, and the engine's decisions do not depend on them."""

from __future__ import annotations

import numpy as np
import pytest

from services.metrics.domain.disclosure import bounds, suppress
from services.metrics.domain.disclosure import engine as engine_module
from services.metrics.domain.disclosure.bounds import EPS, Constraint
from services.metrics.domain.disclosure.slabs import Slabs
from tools.disclosure_audit.synthetic import generate, grid_of


def _largest(seed: int, residents: int) -> tuple[engine_module._Model, list[int], list]:
    model = engine_module._Model(grid_of(generate(seed, residents=residents)), 10)
    model.primary()
    values = np.asarray(model.value, dtype=np.float64)
    batch = model._components("everything", None, (values, values.copy()))
    component, block, _, _ = max(batch, key=lambda part: len(part[0]))
    return model, component, block


def _slabs(model: engine_module._Model, component: list[int], block: list[Constraint]) -> Slabs:
    position = {p: i for i, p in enumerate(model.periods)}
    return Slabs(
        [position[model.refs[c][3]] for c in component], block, [model.value[c] for c in component]
    )


def _holds(block: list[Constraint], point: np.ndarray) -> bool:
    """Every relation and x >= 0 within 1e-6, independently of the module."""
    if (point < -1e-6).any():
        return False
    for c in block:
        value = sum(a * point[v] for v, a in zip(c.variables, c.coefficients, strict=True))
        if value < c.lower - 1e-6 or value > c.upper + 1e-6:
            return False
    return True


def test_slabs_count_only_feasible_points_and_show_most_cells(monkeypatch):
    model, component, block = _largest(2, 300)
    slabs = _slabs(model, component, block)
    counted: list[np.ndarray] = []
    original = Slabs._count

    def count(self, point, low, high):
        ok = original(self, point, low, high)
        if ok:
            counted.append(point.copy())
        return ok

    monkeypatch.setattr(Slabs, "_count", count)
    truth = np.asarray([model.value[c] for c in component], dtype=np.float64)
    low, high = truth.copy(), truth.copy()
    # Hidden cells of months and quarters, a few of them (the slabs are for what is left).
    asked = [v for v in range(len(component)) if model.refs[component[v]][3] != "2025"][::40]
    slabs.show(asked, low, high)
    assert counted
    for point in counted:
        assert _holds(block, point)
    widened = int((high[asked] - low[asked] >= 2 - EPS).sum())
    assert widened > len(asked) // 2, (widened, len(asked))
    # The point the programs start from is left as it was.
    assert np.array_equal(slabs.truth, truth)


def test_a_point_that_breaks_a_relation_is_not_counted():
    # x0 + x1 = 4 (x0 in January, x1 in February): a point that moves x0 alone breaks it.
    slabs = Slabs([5, 6], [Constraint((0, 1), (1.0, 1.0), 4.0, 4.0)], [1.0, 3.0])
    low, high = np.array([1.0, 3.0]), np.array([1.0, 3.0])
    assert not slabs._count(np.array([3.0, 3.0]), low, high)
    assert (low == [1.0, 3.0]).all()
    assert (high == [1.0, 3.0]).all()
    assert slabs._count(np.array([3.0, 1.0]), low, high)
    assert (low == [1.0, 1.0]).all()
    assert (high == [3.0, 3.0]).all()


def test_a_slab_holds_the_cells_outside_it_at_their_truth():
    constraints = [
        Constraint((0, 2), (1.0, -1.0), 0.0, 0.0),  # x0 = x2 (both January)
        Constraint((0, 1), (1.0, 1.0), 0.0, 9.0),  # x0 + x1 <= 9 (x1 in March), tight
    ]
    slabs = Slabs([5, 7, 5], constraints, [1.0, 8.0, 1.0])
    low, high = np.array([1.0, 8.0, 1.0]), np.array([1.0, 8.0, 1.0])
    assert Slabs.slab(5, 0) == {0, 1, 5}
    assert Slabs.slab(5, 1) == {0, 1, 5, 6, 7}
    slabs.show([0], low, high)
    # January's first slab (January, Q1, the year) holds x1 at 8, so x0 only falls (to 0);
    # with the quarter's months x1 may give way and x0 rises to 3 (its box), x2 with it.
    assert low[0] == 0.0
    assert high[0] == 3.0
    assert high[2] == 3.0
    assert low[1] <= 6.0


def test_the_cells_the_tables_leave_on_a_demo_sized_year_need_no_program_of_the_whole():
    """Seed 1, 1,500 residents: the first round of its 5,040-cell component left 16 cells to
    the programs over the whole component (14 municipality totals), the zeros' round 25."""
    grid = grid_of(generate(1, residents=1500))
    calls: list[int] = []
    original = engine_module.Slabs.show
    spans: list[bool] = []

    def show(self, pending, low, high):
        calls.append(len(pending))
        original(self, pending, low, high)
        spans.extend(bool(high[v] - low[v] >= 2 - EPS) for v in pending)

    # The sizes of the programs solved: none over the whole 5,040-cell component.
    solved: list[int] = []
    solve = bounds._Model._solve

    def counting(self):
        solved.append(self.n)
        return solve(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_module.Slabs, "show", show)
        patch.setattr(bounds._Model, "_solve", counting)
        suppress(grid, 10, exact=True)
    assert calls
    assert all(spans), (sum(spans), len(spans))
    assert max(solved) < 4000, sorted(solved)[-5:]


@pytest.mark.parametrize(("seed", "residents", "k"), [(0, 80, 3), (5, 60, 10), (7, 120, 5)])
def test_the_decisions_do_not_depend_on_the_slabs(monkeypatch, seed, residents, k):
    """Components of these years are small: the tables' search and the slabs are switched on
    for every one of them and compared with the tables alone."""
    g = grid_of(generate(seed, residents=residents, organisations=3, keys=3))
    monkeypatch.setattr(engine_module, "TABLES_FROM", 0)
    monkeypatch.setattr(engine_module, "SLAB_CELLS", 0)
    without = suppress(g, k=k, exact=True)
    monkeypatch.setattr(engine_module, "SLAB_CELLS", 10**9)
    calls = []
    original = engine_module.Slabs.show
    monkeypatch.setattr(
        engine_module.Slabs,
        "show",
        lambda self, *args: calls.append(1) or original(self, *args),
    )
    with_slabs = suppress(g, k=k, exact=True)
    assert calls, "the slabs were not used"
    assert dict(with_slabs) == dict(without)
    assert with_slabs.unprotected == without.unprotected
