"""A batch's items and their results: parsing a raw item against a service's item models, the
field names an item's problems carry, and one result per item in the order of the request."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shared.errors import ConflictError, FieldError, ForbiddenError

__all__ = [
    "BatchItemResult",
    "WriteResult",
    "failed",
    "parse_batch_item",
    "under",
    "validation_details",
]


@dataclass(frozen=True)
class WriteResult:
    """What a single write answers: its status and body."""

    status_code: int
    body: dict[str, Any]


class BatchItemResult(BaseModel):
    """One result per batch item, in the order of the request."""

    index: int
    status: int = Field(description="The HTTP status the item would have had on its own.")
    body: dict[str, Any] | None = None
    error: str | None = None
    details: list[dict[str, str]] = Field(default_factory=list)
    message: str | None = None


def validation_details(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        field_name = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "body")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        else:
            message = err["msg"]
        out.append((field_name, message))
    return out


ItemT = TypeVar("ItemT")


def parse_batch_item(adapter: TypeAdapter[ItemT], raw: Any, kinds: Collection[str]) -> ItemT:
    """Validate one batch item against a union of item models discriminated by ``kind``.

    Raises :class:`FieldError` with field names relative to the item (``body.participant.ref``).
    Pydantic puts the union's tag first in an error's location; it names a kind, not a field,
    so a partner would look for a field that is not there: it is dropped.
    """
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        details = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            if loc and loc[0] in kinds:
                loc = loc[1:]
            message = {
                "extra_forbidden": "unknown field",
                "missing": "required field is missing",
            }.get(err["type"], err["msg"])
            details.append((".".join(loc) or "kind", message))
        raise FieldError(details) from None


def under(error: Exception, prefix: str, keep: Collection[str] = ()) -> Exception:
    """A domain error as a batch item's: decisions name the fields of a request body, which sit
    under ``body`` in an item (as the fields that failed parsing do: ``body.participant.ref``).
    The fields in ``keep`` are the item's own (an id that is a path parameter of the single
    endpoint, e.g. a cancellation's ``registration_id``): they stay as they are."""
    if not isinstance(error, FieldError):
        return error
    return FieldError([(f if f in keep else f"{prefix}.{f}", m) for f, m in error.details])


def failed(index: int, exc: Exception) -> BatchItemResult:
    """The result of an item that a domain error refused."""
    if isinstance(exc, FieldError):
        return BatchItemResult(
            index=index,
            status=422,
            error="validation_failed",
            details=[{"field": f, "message": m} for f, m in exc.details],
        )
    if isinstance(exc, ConflictError):
        return BatchItemResult(index=index, status=409, error="conflict", message=exc.message)
    if isinstance(exc, ForbiddenError):
        return BatchItemResult(index=index, status=403, error="forbidden", message=exc.message)
    return BatchItemResult(index=index, status=404, error="not_found", message=str(exc))
