"""The house: imports run one way, and every room keeps to its floor.

The import graph is read from the code (``ast``; nothing is imported). An edge ``A -> B`` is an
import of module ``B`` anywhere in ``A``, top level or inside a function. A name imported from a
package (``from tnt_ref.fisher import approximation_ladder``) is followed through the package's
``__init__`` to the module that defines it, so a package's face cannot hide a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOPS = ("tnt_ref", "proofs_check")

#: The rooms of the packages issue 20 built (and data/, issue 23), bottom (0) to top; a module imports only
#: rooms of a lower floor inside its own package.
FLOORS = {
    "tnt_ref.fisher": {"statistics": 0, "blocks": 1, "gram": 2, "ladder": 3},
    "tnt_ref.training": {"problems": 0, "step": 0, "checkpoint": 0, "stats": 0, "runner": 1, "grid": 2, "summary": 2,
                         "protocol": 3},
    "tnt_ref.data": {"dataset": 0, "synthetic": 0, "digits": 1, "idx": 1},
}

#: The most lines a module may have: past it, a room usually holds two subjects (split it).
MAX_LINES = 500


def _modules(root: Path, tops=TOPS) -> dict:
    mods = {}
    for top in tops:
        for p in sorted((root / top).rglob("*.py")):
            parts = p.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = p
    return mods


def _resolve(mod: str, is_pkg: bool, level: int, module: str | None) -> str:
    if not level:
        return module or ""
    package = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + (module.split(".") if module else []))


def _reexports(mods: dict) -> dict:
    """``package -> {name: defining module}`` from the package's ``from .sub import name`` lines."""
    out: dict = {}
    for m, p in mods.items():
        if p.name != "__init__.py":
            continue
        table = out.setdefault(m, {})
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                src = _resolve(m, True, node.level, node.module)
                for a in node.names:
                    table[a.asname or a.name] = src
    return out


def import_graph(root: Path = ROOT, tops=TOPS) -> dict:
    """``module -> set of modules it imports`` (inside ``tops``), names followed through packages."""
    mods = _modules(root, tops)
    faces = _reexports(mods)
    graph: dict = {m: set() for m in mods}

    def target(name: str) -> str | None:
        seen = set()
        while name not in mods and "." in name and name not in seen:  # a name, not a module: find its home
            seen.add(name)
            pkg, _, attr = name.rpartition(".")
            if pkg in faces and attr in faces[pkg]:
                name = f"{faces[pkg][attr]}.{attr}" if faces[pkg][attr] + "." + attr in mods else faces[pkg][attr]
            else:
                name = pkg
        return name if name in mods else None

    for m, p in mods.items():
        is_pkg = p.name == "__init__.py"
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            names = []
            if isinstance(node, ast.ImportFrom):
                base = _resolve(m, is_pkg, node.level, node.module)
                names = [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                t = target(n)
                if t is not None and t != m:
                    graph[m].add(t)
    return graph


def import_loops(graph: dict) -> list:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    on: set = set()
    out: list = []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(graph, loops) -> str:
    return "; ".join(", ".join(f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp) for comp in loops)


def test_no_import_loops():
    graph = import_graph()
    loops = import_loops(graph)
    assert not loops, f"modules that import each other: {_describe(graph, loops)}"


def test_the_finder_sees_a_loop_through_a_package_face(tmp_path):
    """Mutation of the house: a lazy import from the top room back into a package's face is a loop."""
    pkg = tmp_path / "tnt_ref" / "room"
    pkg.mkdir(parents=True)
    (tmp_path / "tnt_ref" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .low import f\nfrom .high import g\n")
    (pkg / "low.py").write_text("def f():\n    from tnt_ref.room import g\n    return g\n")
    (pkg / "high.py").write_text("from .low import f\n\ndef g():\n    return f\n")
    graph = import_graph(tmp_path, ("tnt_ref",))
    assert import_loops(graph) == [["tnt_ref.room.high", "tnt_ref.room.low"]]
    (pkg / "low.py").write_text("def f():\n    return 1\n")
    assert import_loops(import_graph(tmp_path, ("tnt_ref",))) == []


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_rooms_import_only_lower_floors(package):
    graph = import_graph()
    floors = FLOORS[package]
    rooms = {m for m in graph if m.startswith(package + ".")}
    assert {m.rsplit(".", 1)[1] for m in rooms} == set(floors), f"{package}: a room without a floor in FLOORS"
    bad = [f"{a} -> {b}" for a in sorted(rooms) for b in sorted(graph[a])
           if b in rooms and floors[b.rsplit(".", 1)[1]] >= floors[a.rsplit(".", 1)[1]]]
    assert not bad, f"{package}: imports that do not go down a floor: {bad}"


#: The one door from the library to the checks: ``tnt-ref check-theory`` hands over to ``python -m proofs_check``
#: (a lazy import in the command-line entry point, the top floor; no module below it sees ``proofs_check``).
DOOR = ("tnt_ref.cli", "proofs_check.__main__")


def test_the_library_never_imports_the_checks_or_a_framework():
    graph = import_graph()
    up = [f"{a} -> {b}" for a in graph if a.startswith("tnt_ref") for b in graph[a]
          if b.startswith("proofs_check") and (a, b) != DOOR]
    assert not up, up
    for p in _modules(ROOT).values():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in ("torch", "jax", "jaxlib") for n in names), f"{p}: {names}"


def test_models_and_optimizers_stay_on_their_floors():
    """Models depend only on the backend and validation; optimizers never on the Fisher code or training."""
    graph = import_graph()
    for a, targets in graph.items():
        if a.startswith("tnt_ref.models"):
            assert all(b.startswith(("tnt_ref.models", "tnt_ref.backend", "tnt_ref._validation")) for b in targets), (a, targets)
        if a.startswith("tnt_ref.optim"):
            assert not any(b.startswith(("tnt_ref.fisher", "tnt_ref.training", "tnt_ref.models")) for b in targets), (a, targets)


def test_no_module_is_a_house_of_its_own():
    long = {str(p.relative_to(ROOT)): n for p in _modules(ROOT).values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by subject): {long}"
