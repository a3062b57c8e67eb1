"""The layer rule of DESIGN.md, checked on the imports of every module (including the lazy
imports inside functions): format and checks stay pure, the server reaches evaluation only
through its public interface."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "prompt_lsp"


def _imports(module: Path) -> list[str]:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in names if name.startswith("prompt_lsp")]


def _layer_imports(layer: str) -> dict[str, list[str]]:
    return {
        str(path.relative_to(PACKAGE)): _imports(path)
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    }


def test_format_and_checks_import_nothing_above_them():
    forbidden = (
        "prompt_lsp.evaluation",
        "prompt_lsp.history",
        "prompt_lsp.server",
        "prompt_lsp.cli",
    )
    offenders = {
        module: [name for name in names if name.startswith(forbidden)]
        for layer in ("format", "checks")
        for module, names in _layer_imports(layer).items()
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_format_and_checks_do_not_import_the_lsp_library():
    for layer in ("format", "checks"):
        for path in (PACKAGE / layer).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom | ast.Import):
                    module = getattr(node, "module", None) or ""
                    names = [module] + [a.name for a in node.names]
                    assert not any(n.startswith(("pygls", "lsprotocol")) for n in names), path


def test_server_reaches_evaluation_only_through_its_interface():
    offenders = {}
    for module, names in _layer_imports("server").items():
        bad = [
            name
            for name in names
            if name.startswith(("prompt_lsp.evaluation", "prompt_lsp.history"))
            and name not in ("prompt_lsp.evaluation", "prompt_lsp.evaluation.api")
            and not name.startswith("prompt_lsp.evaluation.api.")
        ]
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_history_does_not_import_the_run():
    """History stores evaluation's result types and compares them with its pure paired
    statistics (`evaluation.stats`); it never runs anything."""
    for module, names in _layer_imports("history").items():
        assert not [
            n
            for n in names
            if n.startswith("prompt_lsp.evaluation")
            and not n.startswith(("prompt_lsp.evaluation.results", "prompt_lsp.evaluation.stats"))
        ], module


def test_no_path_literal_of_the_state_folder_outside_its_owner():
    owner = PACKAGE / "history" / "paths.py"
    for path in PACKAGE.rglob("*.py"):
        if path != owner:
            assert '".prompt-lsp"' not in path.read_text(encoding="utf-8"), path
