"""A year's fingerprint (services/metrics/domain/disclosure/fingerprint.py): a release reuses
the stored decisions of a year whose fingerprint is unchanged, so the fingerprint must change
with anything the decisions depend on, and not with what they do not (the order rows came in);
and the stored decisions must come back equal."""

from __future__ import annotations

import dataclasses
import random

import orjson
import pytest

from services.metrics.domain.disclosure import Baseline, Count, YearGrid, suppress
from services.metrics.domain.disclosure.fingerprint import (
    decisions_document,
    fingerprint,
    from_document,
)
from tools.disclosure_audit.synthetic import generate, grid_of


def _grid(seed: int = 5, residents: int = 40) -> YearGrid:
    # With the baselines a grid carries (here: half of them public).
    return grid_of(
        generate(seed, residents=residents, activity=0.5),
        baseline=lambda by, key, period: Baseline(len(key) + 3, public=len(period) == 4),
    )


def _fp(grid: YearGrid, k: int = 10, control: str = "full", exact: bool = True) -> str:
    return fingerprint(grid, k=k, control=control, exact=exact)


def _shuffled(grid: YearGrid, seed: int) -> YearGrid:
    rng = random.Random(seed)

    def shuffle(mapping):  # type: ignore[no-untyped-def]
        items = list(mapping.items())
        rng.shuffle(items)
        return dict(items)

    return dataclasses.replace(
        grid,
        counts=shuffle(grid.counts),
        sections=shuffle(grid.sections),
        statistics=shuffle(grid.statistics),
        baselines=shuffle(grid.baselines),
    )


def test_the_same_grid_in_another_row_order_has_the_same_fingerprint_and_decisions():
    grid = _grid()
    again = _shuffled(grid, 1)
    assert list(again.counts) != list(grid.counts)
    assert _fp(again) == _fp(grid)
    # What makes that sound: the engine does not depend on the rows' order either.
    assert suppress(again, 10, exact=False) == suppress(grid, 10, exact=False)


def test_anything_the_decisions_depend_on_changes_the_fingerprint():
    grid = _grid()
    base = _fp(grid)
    ref, count = next((r, c) for r, c in grid.counts.items() if c.value > 0)
    cell = next(iter(grid.baselines))
    changed = [
        # a fact: one count, or the people behind it
        dataclasses.replace(
            grid, counts={**grid.counts, ref: Count(count.value + 1, count.people)}
        ),
        dataclasses.replace(
            grid, counts={**grid.counts, ref: Count(count.value, count.people - 1)}
        ),
        # a section, a statistic
        dataclasses.replace(grid, sections={**grid.sections, ref: 3}),
        dataclasses.replace(grid, statistics={**grid.statistics, ("x", "", "", "y"): 0.5}),
        # the baselines the grid carries (the baseline year's own decisions among them)
        dataclasses.replace(grid, baselines={**grid.baselines, cell: Baseline(7, visible=True)}),
        dataclasses.replace(
            grid,
            baselines={
                **grid.baselines,
                cell: dataclasses.replace(
                    grid.baselines[cell], visible=not grid.baselines[cell].visible
                ),
            },
        ),
        # the order of a breakdown's keys: the engine's tie-break
        dataclasses.replace(
            grid,
            keys={**grid.keys, "neighbourhood": list(reversed(grid.keys["neighbourhood"]))},
        ),
    ]
    fps = [_fp(g) for g in changed]
    fps += [_fp(grid, k=11), _fp(grid, control="primary"), _fp(grid, exact=False)]
    assert base not in fps
    assert len(set(fps)) == len(fps)


def test_the_engine_version_is_in_the_fingerprint(monkeypatch):
    from services.metrics.domain.disclosure import fingerprint as module

    grid = _grid()
    before = _fp(grid)
    monkeypatch.setattr(module, "ENGINE_VERSION", module.ENGINE_VERSION + 1)
    assert _fp(grid) != before


def test_stored_decisions_come_back_equal():
    for seed in (5, 6):
        decisions = suppress(_grid(seed), 10, exact=False)
        # As the release store keeps them: JSON bytes.
        doc = orjson.loads(orjson.dumps(decisions_document(decisions)))
        back = from_document(doc)
        assert back == decisions
        assert [type(d.value) for d in back.values()] == [type(d.value) for d in decisions.values()]
        assert list(back) == list(decisions)


def test_a_grid_field_the_fingerprint_does_not_cover_is_refused(monkeypatch):
    from services.metrics.domain.disclosure import fingerprint as module

    grid = _grid()
    _fp(grid)
    monkeypatch.setitem(module._COVERED, YearGrid, module._COVERED[YearGrid] - {"statistics"})
    with pytest.raises(TypeError, match="YearGrid"):
        _fp(grid)
