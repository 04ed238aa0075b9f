"""Each service has the same shape (issues 13 and 14, ../shared/style.md): the domain is free of
HTTP, Kafka and SQL; the service layer sends no SQL and speaks no Kafka or HTTP (it works through
the adapters its composition root gives it). Checked on the source, so that a shortcut cannot
creep back in."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"
TRANSPORTS = ("aiokafka", "faststream", "fastapi", "starlette", "httpx", "uvicorn")
DATABASE_CALLS = {
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "copy_records_to_table",
}
# Statements as the project writes them (upper-case keywords), not English in docstrings.
SQL = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT INTO|UPDATE \S+ SET|DELETE FROM|SET LOCAL|CREATE TABLE|"
    r"pg_advisory)\b",
    re.DOTALL,
)


def modules(layer: str) -> list[Path]:
    return sorted(p for p in SERVICES.glob(f"*/{layer}/**/*.py"))


def imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def sql_in(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in DATABASE_CALLS
        ):
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL.search(node.value)
        ):
            found.append(f"line {node.lineno}: {node.value[:40]!r}")
    return found


def test_the_layers_exist_in_every_service() -> None:
    for service in ("registrations", "referrals", "metrics"):
        assert any(p.parts[-3] == service for p in modules("domain"))
        assert any(p.parts[-3] == service for p in modules("service_layer"))


@pytest.mark.parametrize("path", modules("domain") + modules("service_layer"), ids=str)
def test_no_transport_and_no_sql_below_the_adapters(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert not imported(tree) & set(TRANSPORTS), f"{path} imports a transport"
    assert not sql_in(tree), f"{path} sends SQL: {sql_in(tree)}"


@pytest.mark.parametrize("path", modules("domain"), ids=str)
def test_the_domain_holds_no_database_driver(path: Path) -> None:
    assert "asyncpg" not in imported(ast.parse(path.read_text(), str(path)))
