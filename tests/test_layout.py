"""The package's architecture, drawn from its imports: three floors and a tool.

- the library (everything under ``sdnet/`` but the folders and modules below): the layer, the
  models, data, training, evaluation, attacks, the measurements; what a reader imports;
- ``sdnet/chapters/``: what the chapters compute from results (tables, verdict rules, the
  held-out protocol, the reports of chapters 2-5, figures);
- the study and its pipeline: ``params``, ``study``, ``pipeline``, ``stale``, ``readme``, ``regime``, ``marked`` and
  ``sdnet/stages/``;
- ``sdnet/tools/``: commands no stage runs (the benchmark).

A floor imports only its own and the floors below it; nothing imports a tool. Imports inside
functions count (they run when the function does); a module's ``__main__`` block does not.
"""

from __future__ import annotations

from pathlib import Path

from helpers import ROOT
from sdnet.provenance import _imports

STUDY = {"sdnet.params", "sdnet.study", "sdnet.pipeline", "sdnet.stale", "sdnet.readme", "sdnet.regime", "sdnet.marked"}
FLOORS = {"library": 0, "chapters": 1, "study": 2, "tools": 3}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "sdnet").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def floor(module: str) -> str:
    if module.startswith("sdnet.chapters"):
        return "chapters"
    if module.startswith("sdnet.tools"):
        return "tools"
    if module in STUDY or module.startswith("sdnet.stages"):
        return "study"
    return "library"


def imports() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        found = _imports(path.read_text(), name, path.name == "__init__.py", as_main=False)
        graph[name] = {m for m in found if m in known and m != name}
    return graph


def test_every_import_goes_to_the_same_floor_or_below():
    upward = [f"{a} ({floor(a)}) imports {b} ({floor(b)})" for a, targets in imports().items() for b in targets
              if FLOORS[floor(b)] > FLOORS[floor(a)] or (floor(b) == "tools" and not a.startswith("sdnet.tools"))]
    assert not upward, "\n".join(upward)


def test_the_library_imports_no_chapter_study_or_stage():
    library = [m for m in modules() if floor(m) == "library"]
    assert {"sdnet.csc", "sdnet.models", "sdnet.train", "sdnet.evaluate", "sdnet.attacks", "sdnet.robustness"} <= set(library)
    for module in library:
        assert all(floor(m) == "library" for m in imports()[module]), module


def test_no_module_imports_itself_through_others():
    graph = imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt == "sdnet" or node == "sdnet":  # the package's lazy names (sdnet.CSCConv2d) import on first use
                continue
            assert state.get(nxt) != 1, "import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]) if nxt in path else nxt
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
