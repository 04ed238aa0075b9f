"""What a write decided, and what every service's decisions share. Pure: no I/O.

A service's domain decides one command at a time against a state (``decide(command, state,
context) -> Decision``, raising a domain error), and says how an event changes that state
(``evolve``). The state holds the records one batch consults, loaded set-wise before the first
decision; each decision's events are applied to it before the next is made, so that a batch sees
its own effects (an activity created by item 3 exists for item 4).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson
from pydantic import BaseModel

from shared.errors import DOMAIN_ERRORS, ConflictError
from shared.events import CloudEvent, EventData, new_event
from shared.pseudonym import Pseudonymiser

# The status of a remembered answer whose person was erased (shared/erasure.py, which imports
# this module: the value is written here once).
ERASED_STATUS = 410

__all__ = [
    "DOMAIN_ERRORS",
    "ERASED_STATUS",
    "BatchState",
    "Context",
    "Decider",
    "Decision",
    "IdempotencyConflict",
    "IdempotencyKey",
    "Records",
    "Remembered",
    "decide_and_apply",
    "replayed",
    "request_digest",
]

# (organisation, kind, item id): the identity of an idempotent write.
IdempotencyKey = tuple[str, str, str]


class IdempotencyConflict(ConflictError):
    def __init__(self, kind: str, item_id: str) -> None:
        super().__init__(
            f"{kind} {item_id!r} was already written with a different body; "
            "use a new id for a new write"
        )
        self.kind = kind
        self.item_id = item_id


def request_digest(
    pseudonymiser: Pseudonymiser, kind: str, item_id: str, body: dict[str, Any]
) -> str:
    """Keyed digest of a request: tells the same body from another without keeping either."""
    canonical = orjson.dumps([kind, item_id, body], option=orjson.OPT_SORT_KEYS)
    return pseudonymiser.digest(canonical)


@dataclass(frozen=True)
class Remembered:
    """The first answer to an idempotent write, kept to answer its replays."""

    digest: str
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """The answer to one command and the events it publishes (none: a replay or a no-op).
    ``remember``: the key and request digest under which the answer is kept for replays."""

    status_code: int
    body: dict[str, Any]
    events: tuple[CloudEvent[Any], ...] = ()
    remember: tuple[IdempotencyKey, str] | None = None


@dataclass(frozen=True)
class Context:
    """Who decides and when: the key's organisation (never a field of the body), the moment the
    platform accepts the write, and the keyed hash functions of the platform."""

    organisation_id: str
    now: datetime
    pseudonymiser: Pseudonymiser

    def event(self, data: EventData, **kwargs: Any) -> CloudEvent[Any]:
        """``data`` in its envelope, caused by this organisation at this moment."""
        return new_event(data, self.organisation_id, time=self.now, **kwargs)

    def key(self, kind: str, item_id: str) -> IdempotencyKey:
        return (self.organisation_id, kind, item_id)

    def digest(self, key: IdempotencyKey, body: BaseModel) -> str:
        return request_digest(self.pseudonymiser, key[1], key[2], body.model_dump(mode="json"))


def replayed(
    remembered: Mapping[IdempotencyKey, Remembered], key: IdempotencyKey, digest: str
) -> Decision | None:
    """The same id with the same body answers as the first time did (200); with another body it
    is a conflict (409). None: the first time."""
    earlier = remembered.get(key)
    if earlier is None:
        return None
    if earlier.status_code == ERASED_STATUS:
        # The write was about a person erased since (shared/erasure.py): it is not written again,
        # whatever the body (the digest was dropped with the person).
        return Decision(ERASED_STATUS, earlier.body)
    if earlier.digest != digest:
        raise IdempotencyConflict(key[1], key[2])
    return Decision(200, earlier.body)


K = TypeVar("K")
V = TypeVar("V")


class Records(Mapping[K, V], Generic[K, V]):
    """Records of one kind: those a batch loaded, and those its decisions added or changed.

    A mapping for the decisions; :meth:`added` and :meth:`changed` for the unit of work, which
    writes exactly those."""

    def __init__(self, loaded: Mapping[K, V] | None = None) -> None:
        self._loaded: dict[K, V] = dict(loaded or {})
        self._current: dict[K, V] = dict(self._loaded)

    def __getitem__(self, key: K) -> V:
        return self._current[key]

    # The dict's own lookups: Mapping's get and `in` go through __getitem__ and catch its
    # KeyError, about 1 µs for a key that is not there (every new write asks for its answer).
    def get(self, key: K, default: Any = None) -> Any:
        return self._current.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._current

    def __iter__(self) -> Iterator[K]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def put(self, key: K, value: V) -> None:
        self._current[key] = value

    def added(self) -> list[V]:
        return [v for _, v in self.added_items()]

    def changed(self) -> list[V]:
        return [v for _, v in self.changed_items()]

    def added_items(self) -> list[tuple[K, V]]:
        return [(k, v) for k, v in self._current.items() if k not in self._loaded]

    def changed_items(self) -> list[tuple[K, V]]:
        return [
            (k, v) for k, v in self._current.items() if k in self._loaded and self._loaded[k] != v
        ]


@dataclass
class BatchState:
    """What every service's state holds: the remembered answers of the batch's idempotent
    writes (loaded ones, and those its decisions gave)."""

    remembered: Records[IdempotencyKey, Remembered] = field(default_factory=Records)

    def remember(self, decision: Decision) -> None:
        if decision.remember is not None:
            key, digest = decision.remember
            self.remembered.put(key, Remembered(digest, decision.status_code, decision.body))


ItemT = TypeVar("ItemT")
ItemT_contra = TypeVar("ItemT_contra", contravariant=True)
StateT = TypeVar("StateT", bound=BatchState)
StateT_contra = TypeVar("StateT_contra", bound=BatchState, contravariant=True)


class Decider(Protocol[ItemT_contra, StateT_contra]):
    """A service's decisions: what a command decides against a state, what an event changes."""

    def decide(self, item: ItemT_contra, state: StateT_contra, context: Context) -> Decision: ...

    def evolve(self, state: StateT_contra, event: CloudEvent[Any]) -> None: ...


def decide_and_apply(
    decider: Decider[ItemT, StateT], item: ItemT, state: StateT, context: Context
) -> Decision:
    """Decide ``item`` and apply the decision to ``state``: its answer is remembered and its
    events evolve the state, so that the next item is decided against them. A refusal (a domain
    error) changes nothing."""
    decision = decider.decide(item, state, context)
    state.remember(decision)
    for event in decision.events:
        decider.evolve(state, event)
    return decision
