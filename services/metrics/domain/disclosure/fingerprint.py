"""What a year's decisions depend on, as one digest, and the decisions as a plain document.

The engine is pure and deterministic (:mod:`.engine`): the same year grid — its counts,
sections, statistics, its keys in their order and the baselines it carries (which hold the
baseline year's own decisions) — with the same k, control and code gives the same decisions.
A release stores each year's :func:`fingerprint` beside its decisions, so that the next cut
reuses the decisions of a year whose fingerprint is unchanged instead of running the exact
check again (minutes for a year of small cells).

What the digest covers, and why:

- the grid's canonical form: every count, section, statistic and baseline sorted by its cell
  (the engine breaks ties by the fixed order of figures, breakdowns, keys and periods, never
  by the order a query returned rows in), and the keys of every breakdown *in their order*
  (that order is the engine's tie-break);
- k, the control and whether the exact check ran;
- :data:`ENGINE_VERSION`, the source text of this package (any change to the engine, its
  spec or its proofs changes the digest, even when nobody bumps the version) and the versions
  of the numerical libraries the exact check runs on (HiGHS, NumPy).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

import orjson

from .decisions import Decision, Decisions
from .grid import Baseline, Count, YearGrid

__all__ = ["ENGINE_VERSION", "decisions_document", "fingerprint", "from_document"]

# Bump when the engine's decisions change for the same grid in a way the source digest below
# would not see (e.g. a change of meaning in the query layer's grid without a change here).
# 2: the exact check's search for feasible points changed (issue 11, exact2): which cells the
# exact programs are asked about, and so the relations they name as pinning a cell (the
# repair's first choice), may differ.
# 3: points built along the tables (issue 11, exact3) show most cells of the large components
# before the programs, and the last few pending cells are moved one by one: the programs see
# other cells and another sequence of objectives, so, in principle, another degenerate dual.
# 4: a figure of public record (the number of partners) is hidden as the last resort when
# nothing else can protect a cell it pins (a registry of one partner): decisions change there.
# 5: the cells the tables leave are shown by programs over a few periods (issue 11, exact4):
# other points are seen, so later rounds ask about other cells, and the small components that
# share one exact program may be other ones: in principle, another degenerate dual there
# (on the four synthetic years: no figure differs).
# 6: the search's points spare the programs the cells they show, and few cells left of a small
# program are solved exactly at once (issue 11 again, 2026-12-04): the exact programs hold
# other components and see another sequence of objectives, so the relations they name as
# pinning a cell may differ (on the five totals grids of the reads benchmark, one figure's
# repair chose other cells: 79 hidden instead of 78, both checked protected).
ENGINE_VERSION = 6


@functools.cache
def _code() -> str:
    """The engine's own source and the numerical libraries it runs on."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    for dist in ("highspy", "numpy"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=?".encode())
    return h.hexdigest()


# The fields the digest below covers: a field added to the grid must be added to the digest
# too (else a change of it alone would reuse stale decisions), so a grid with other fields is
# refused rather than fingerprinted in part.
_COVERED = {
    YearGrid: {"year", "keys", "counts", "sections", "statistics", "baselines"},
    Count: {"value", "people"},
    Baseline: {"value", "public", "visible", "same_cell"},
}


def fingerprint(grid: YearGrid, *, k: int, control: str, exact: bool) -> str:
    """A digest of everything the engine's decisions of ``grid`` depend on (hex SHA-256)."""
    for kind, covered in _COVERED.items():
        if {f.name for f in dataclasses.fields(kind)} != covered:
            raise TypeError(f"the fingerprint does not cover every field of {kind.__name__}")
    doc: list[Any] = [
        ENGINE_VERSION,
        _code(),
        k,
        control,
        exact,
        grid.year,
        [[name, list(keys)] for name, keys in grid.keys.items()],
        sorted([*ref, c.value, c.people] for ref, c in grid.counts.items()),
        sorted([*ref, value] for ref, value in grid.sections.items()),
        # repr: exact for every float, NaN included (JSON has no NaN).
        sorted([*ref, repr(value)] for ref, value in grid.statistics.items()),
        sorted(
            [*ref, b.value, b.public, b.visible, b.same_cell] for ref, b in grid.baselines.items()
        ),
    ]
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)).hexdigest()


def decisions_document(decisions: Decisions) -> dict[str, Any]:
    """The decisions as plain JSON data (:func:`from_document` gives them back, equal)."""
    return {
        "k": decisions.k,
        "year": decisions.year,
        "figures": [
            [*ref, d.value, d.suppressed, d.reason] for ref, d in decisions.figures.items()
        ],
        "baselines": [[*ref, value] for ref, value in decisions.baselines.items()],
        "unprotected": [list(ref) for ref in decisions.unprotected],
    }


def from_document(doc: dict[str, Any]) -> Decisions:
    return Decisions(
        k=doc["k"],
        year=doc["year"],
        figures={
            (f, by, key, period): Decision(value, suppressed, reason)
            for f, by, key, period, value, suppressed, reason in doc["figures"]
        },
        baselines={(by, key, period): value for by, key, period, value in doc["baselines"]},
        unprotected=tuple((f, by, key, period) for f, by, key, period in doc["unprotected"]),
    )
