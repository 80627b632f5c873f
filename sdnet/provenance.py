"""Provenance: which code a command runs, and fingerprints of code and data.

A result is only as good as the knowledge of what produced it. Two places need that knowledge:
dvc.yaml must list, as each stage's deps, every ``sdnet`` module the stage's command or notebook
imports (directly or through other modules, also inside functions: they run when the function
does), so that DVC reruns it when any of them changes (:func:`code_dependencies`; checked by the
tests); and a training run must not resume a checkpoint made by other code or from other data
(:func:`weights_fingerprint`, :func:`data_fingerprint`, stored in every checkpoint).

A module's ``if __name__ == "__main__":`` block runs only when that module is the command
(``python -m``): its imports count for the command, not for a module that merely imports it. The
trainer's command line uses this to report test accuracy without making the evaluation code a
dependency of the training stage.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the sdnet package


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (either operand order)."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1 and isinstance(node.test.ops[0], ast.Eq)):
        return False
    sides = [node.test.left, node.test.comparators[0]]
    return any(isinstance(a, ast.Name) and a.id == "__name__" for a in sides) and any(isinstance(a, ast.Constant) and a.value == "__main__" for a in sides)


def _imports(source: str, module: str, is_package: bool, as_main: bool = True) -> set[str]:
    """Modules that ``source`` (of ``module``) imports anywhere in its body, as dotted names; its
    top-level ``__main__`` block only when it runs ``as_main``."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    if not as_main:
        tree.body = [node for node in tree.body if not _is_main_block(node)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)  # `from sdnet import viz` imports a module
    return found


def _notebook_source(path: Path) -> str:
    """The code cells of a notebook as one Python source (IPython magics and shell lines dropped)."""
    cells = json.loads(path.read_text())["cells"]
    lines = [
        line
        for cell in cells if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return "\n".join(lines)


def code_dependencies(root: str | Path, *, modules: list[str] = (), notebooks: list[str] = (), imported: list[str] = ()) -> set[str]:
    """The ``sdnet`` source files (relative paths) that running ``modules`` (``python -m``) or
    ``notebooks``, or importing ``imported``, can execute: every sdnet module they import, the
    modules those import, and so on, with the ``__init__.py`` of every package on the way."""
    root = Path(root)
    commands = set(modules)
    pending = [(name, None) for name in [*modules, *imported]] + [(None, nb) for nb in notebooks]
    seen: set[str] = set()
    files: set[str] = set()
    while pending:
        name, notebook = pending.pop()
        if notebook is not None:
            source, module, is_package, as_main = _notebook_source(root / notebook), "__main__", False, True
        else:
            if name in seen:
                continue
            seen.add(name)
            path = _module_file(root, name)
            if path is None:
                continue  # an attribute imported with `from x import y`, not a module
            files.add(path.relative_to(root).as_posix())
            source, module, is_package, as_main = path.read_text(), name, path.name == "__init__.py", name in commands
            parts = name.split(".")
            pending += [(".".join(parts[:i]), None) for i in range(1, len(parts))]  # parent packages run first
        pending += [(m, None) for m in _imports(source, module, is_package, as_main) if m == "sdnet" or m.startswith("sdnet.")]
    return files


def code_fingerprint(files: set[str], root: str | Path = PACKAGE_ROOT) -> str:
    """A hash of the source ``files`` (paths relative to ``root``): it changes exactly when one of them does."""
    root = Path(root)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


TRAINER = "sdnet.train"  # the module whose closure decides a trained network's weights


def weights_code(root: str | Path = PACKAGE_ROOT) -> set[str]:
    """The sdnet files that decide a trained network's weights: the trainer and every module it
    imports (layer, models, data readers and loaders, the training configuration, device and
    precision, checkpoints, this module). The ``train@<run>`` stages depend on these, their own
    stage module and the study's parameters (:mod:`sdnet.params`, which only choose a
    TrainConfig); what is measured on a trained network (:mod:`sdnet.evaluate`, the chapters) is
    not among them."""
    return code_dependencies(root, imported=[TRAINER])


def weights_fingerprint(root: str | Path = PACKAGE_ROOT) -> str:
    """:func:`code_fingerprint` of :func:`weights_code`: a resume state or finished weights made
    by other weight-deciding code is not resumed (nor kept) by a run of today's."""
    return code_fingerprint(weights_code(root), root)


def data_fingerprint(*image_sets) -> str:
    """A hash of the pixels, labels and class names of ImageSets (a CIFAR split hashes in well
    under a second): a run resumed on different data would be a different run."""
    digest = hashlib.sha256()
    for data in image_sets:
        digest.update(json.dumps([data.name, data.classes, list(data.images.shape)]).encode())
        digest.update(data.images.contiguous().numpy().tobytes())
        digest.update(data.labels.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
