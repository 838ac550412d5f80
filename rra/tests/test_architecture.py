"""The layout's rules, measured from the source (docs/architecture.md): the platform
(rra/) imports no app, apps reach each other only through public names, and no module
grows past 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "chats", "documents")
MAX_LINES = 600
# Not product code (tests, generated migrations, benchmarks) or a flat list of
# settings read from the environment.
EXEMPT = ("tests", "testing", "migrations")


def _modules(*folders: str, exempt: tuple[str, ...] = EXEMPT):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if not set(path.relative_to(ROOT).parts[:-1]) & set(exempt):
                yield path


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file, function-local ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_platform_imports_no_app():
    reaching = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in _modules("rra")
        for module, _ in _imports(path)
        if _top(module) in APPS
    ]
    assert reaching == []


def test_the_rule_sees_an_import_of_an_app(tmp_path):
    # The walk finds imports anywhere in a file, a function's included.
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from chats.models import Chat\n")
    assert [_top(m) for m, _ in _imports(module)] == ["chats"]


def test_apps_reach_each_other_only_through_public_names():
    private = [
        f"{path.relative_to(ROOT)}: {module}.{name}"
        for app in APPS
        for path in _modules(app)
        for module, names in _imports(path)
        if _top(module) in APPS and _top(module) != app
        for name in names
        if name.startswith("_") or any(part.startswith("_") for part in module.split("."))
    ]
    assert private == []


def test_documents_does_not_import_chats():
    # documents announces changes (documents.signals.readability_changed); chats listens.
    # evaluation.py, the operator's evaluation of search and of the answer guard, is the
    # one exception (docs/architecture.md).
    reaching = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in _modules("documents")
        if path.name != "evaluation.py"
        for module, _ in _imports(path)
        if _top(module) == "chats"
    ]
    assert reaching == []


def test_no_module_is_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in _modules(*APPS, "rra")
        if path.name != "settings.py" and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
