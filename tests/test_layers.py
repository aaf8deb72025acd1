"""The layer contract: each layer imports only from the layers below it (beside the
``proof/`` purity test in ``test_package.py``). Imports inside functions count too: a
lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"

#: Bottom to top; a module's layer is the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "ario_mlflow._version",
            "ario_mlflow._files",
            "ario_mlflow._process",
            "ario_mlflow.errors",
            "ario_mlflow.tags",
            "ario_mlflow.config",
            "ario_mlflow.redaction",
        ),
    ),
    ("proof", ("ario_mlflow.proof",)),
    ("keys", ("ario_mlflow.keys", "ario_mlflow.engine")),
    ("report", ("ario_mlflow.report",)),
    ("arweave", ("ario_mlflow.arweave",)),
    ("outbox", ("ario_mlflow.outbox",)),
    ("localgw", ("ario_mlflow.localgw",)),
    ("lifecycle", ("ario_mlflow.lifecycle",)),
    ("verify", ("ario_mlflow.verify",)),
    ("demo", ("ario_mlflow.demo",)),
    ("cli", ("ario_mlflow.cli",)),
    # the public surface: the package root (lazy names) and the 0.3.0 import paths,
    # modules that only re-export from their new homes
    (
        "surface",
        (
            "ario_mlflow",
            "ario_mlflow.anchoring",
            "ario_mlflow.model",
            "ario_mlflow.registry",
            "ario_mlflow.plugin",
            "ario_mlflow.verify_status_client",
        ),
    ),
]

#: Upward imports kept on purpose, each a documented import path that re-exports.
ALLOWED = {
    ("ario_mlflow.proof", "ario_mlflow.engine"): "ario_mlflow.proof.ProofEngine (0.3.0)",
    ("ario_mlflow.arweave.uploader", "ario_mlflow.outbox.handlers"): "0.4 sync_journal path",
    ("ario_mlflow.arweave.uploader", "ario_mlflow.outbox.sync"): "0.4 sync_journal path",
    ("ario_mlflow.arweave.uploader", "ario_mlflow.outbox.workers"): "0.4 sync_journal path",
}


def _layer(module: str) -> int:
    best, index = "", -1
    for position, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, position
    assert index >= 0, f"{module} is in no layer"
    return index


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(module: str, node: ast.AST, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    names = []
    for alias in node.names:  # ``from ario_mlflow import tags`` imports a module
        candidate = f"{source}.{alias.name}"
        stem = SRC / Path(*candidate.split("."))
        names.append(candidate if stem.with_suffix(".py").exists() or stem.is_dir() else source)
    return names


def _edges() -> list[tuple[str, str]]:
    edges = []
    for path in sorted((SRC / "ario_mlflow").rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for target in _imported(module, node, path.name == "__init__.py"):
                if target == "ario_mlflow" or target.startswith("ario_mlflow."):
                    edges.append((module, target))
    return edges


def test_each_layer_imports_only_from_the_layers_below() -> None:
    upward = sorted(
        f"{source} ({LAYERS[_layer(source)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for source, target in _edges()
        if _layer(target) > _layer(source) and (source, target) not in ALLOWED
    )
    assert upward == []


def test_the_exceptions_are_still_needed() -> None:
    """An allowance nobody uses any more is deleted, not kept as a loophole."""
    assert set(ALLOWED) <= set(_edges())


def test_the_outbox_knows_neither_mlflow_nor_http() -> None:
    for path in (SRC / "ario_mlflow" / "outbox").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for target in _imported(_module_name(path), node, path.name == "__init__.py"):
                root = target.split(".")[0]
                assert root not in {"mlflow", "requests", "urllib3", "http"}, (path, target)
                assert not target.startswith("ario_mlflow.lifecycle"), (path, target)
