"""The package layout of docs/architecture.md, enforced: every module imports on its own (no import circle), each
room imports only from the rooms below it, and no module grows past 500 lines."""
import ast
import importlib
import pathlib
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "nearsight"

#: the rooms, bottom to top (docs/architecture.md): a room may import from lower layers only, plus ALLOWED
LAYERS = {
    "errors": 0,
    "lattice": 1, "runtime": 1,
    "hamiltonian": 2, "ensemble": 2, "states": 2, "io": 2, "fields": 2,
    "trajectory": 3, "descriptors": 3, "electrons": 3,
    "ml": 4, "dynamics": 4,
    "providers": 5, "datasets": 5, "distributed": 5, "training": 5,
    "analysis": 6, "testing": 6,
    "cli": 7, "__main__": 8, "__init__": 8,          # the package root re-exports the public API
}
ALLOWED = {("training", "distributed")}      # DDP training uses the process-group helpers


def _modules():
    for p in sorted(SRC.rglob("*.py")):
        rel = p.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield p, ".".join(parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: pathlib.Path, module: str):
    pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["__version__"]:
            continue                                  # the version string, defined first in the package root
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[:len(pkg) - node.level + 1]
            yield ".".join(base + ([node.module] if node.module else []))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nearsight"):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("nearsight"))


def test_every_room_is_in_the_layer_table():
    rooms = {_room(m) for _, m in _modules()}
    assert rooms == set(LAYERS), f"add new rooms to LAYERS and docs/architecture.md: {rooms ^ set(LAYERS)}"


def test_rooms_import_only_from_lower_layers():
    bad = []
    for path, module in _modules():
        src = _room(module)
        for target in _imports(path, module):
            dst = _room(target)
            if dst != src and LAYERS[dst] >= LAYERS[src] and (src, dst) not in ALLOWED:
                bad.append(f"{module} imports {target} ({src} layer {LAYERS[src]} -> {dst} layer {LAYERS[dst]})")
    assert not bad, "\n".join(bad)


def test_no_module_over_500_lines():
    long = {m: n for p, m in _modules() if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_every_module_imports_on_its_own():
    """An import circle shows up when a module is the first of the package to be imported."""
    failed = []
    saved = {k: v for k, v in sys.modules.items() if k == "nearsight" or k.startswith("nearsight.")}
    try:
        for _, module in _modules():
            if module.endswith("__main__"):
                continue
            for k in [k for k in sys.modules if k == "nearsight" or k.startswith("nearsight.")]:
                del sys.modules[k]
            try:
                importlib.import_module(module)
            except ImportError as exc:
                failed.append(f"{module}: {exc}")
    finally:
        for k in [k for k in sys.modules if k == "nearsight" or k.startswith("nearsight.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    assert not failed, "\n".join(failed)
