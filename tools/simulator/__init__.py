"""Simulated partners of a municipality, sent through the services' public HTTP APIs.

``generate`` is the simulation as a pure function; ``plan_batches`` and ``send`` deliver it;
``expected_figures`` computes from the accepted writes what the indicators must show.
"""

from tools.simulator.expected import accepted_writes, expected_figures, published, read_ledger
from tools.simulator.generate import Write, generate
from tools.simulator.send import Batch, SendOptions, Summary, plan_batches, send

__all__ = [
    "Batch",
    "SendOptions",
    "Summary",
    "Write",
    "accepted_writes",
    "expected_figures",
    "generate",
    "plan_batches",
    "published",
    "read_ledger",
    "send",
]
