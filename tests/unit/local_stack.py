"""deploy/local/stack.py as a module for the unit tests (it is a script, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

STACK_PY = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stack.py"


def load_stack(name: str) -> ModuleType:
    """A fresh import of the script under ``name`` (registered, so that its dataclasses
    resolve their module)."""
    spec = importlib.util.spec_from_file_location(name, STACK_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
