"""Data minimisation rules that both writing services apply, written once (docs/privacy.md
"Minimisation").

- ``lives_alone`` is no longer collected. No indicator uses it, and as a breakdown it would be one
  more attribute to protect under disclosure control (it splits small cells further). Partners'
  systems built against the first contract still send it: it is accepted (so that they keep
  working) and ignored — never stored, published or logged.
- Cancellation reasons and referral outcomes are codes from the reference lists
  (``cancellation_reasons``, ``referral_outcomes`` in the reference data), never free text.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

__all__ = ["LIVES_ALONE_DESCRIPTION", "Code", "lives_alone_ignored"]

LIVES_ALONE_DESCRIPTION = (
    "Deprecated and ignored: accepted for compatibility, never stored or published "
    "(no indicator uses it; docs/privacy.md)."
)


def lives_alone_ignored() -> Any:
    """The field definition of ``participant.lives_alone`` in every request model."""
    return Field(None, deprecated=True, description=LIVES_ALONE_DESCRIPTION)


# A code as a partner sends it; the reference list it must be on is checked by the rules (an
# unknown code is a 422 naming the field and the allowed codes).
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
