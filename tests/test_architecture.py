"""The engine, providers and storage know nothing of Discord (STYLE.md): checked on the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "bot/engine": {"discord", "aiohttp", "aiosqlite"},
    "bot/providers": {"discord", "aiosqlite"},
    "bot/storage": {"discord", "aiohttp"},
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_does_not_import_forbidden_packages(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no modules"
    offenders = {str(f.relative_to(ROOT)): sorted(imported_modules(f) & FORBIDDEN[package]) for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}
