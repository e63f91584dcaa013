"""The code each stage runs, derived from its imports: the one source of ``dvc.yaml``'s code
``deps`` and of the checkpoint's code fingerprint.

A stage's code is the closure of the ``csl`` modules its entry point imports, anywhere in a
module (a function-level ``from csl import tracking`` counts: it runs when the stage runs),
with the package ``__init__`` of every module on the way. The command-line dispatcher
(:data:`SHALLOW`) is followed only through its module-level imports: it imports each
command's code lazily, and a stage depends on its own command, not on every other one.

Found statically (``ast``), so a test can check ``dvc.yaml`` without running anything:
``python -m csl.stages.deps --check`` lists what a stage imports and its deps miss;
``--write`` rewrites the code deps in ``dvc.yaml`` (comments and other deps kept).
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../csl
SRC_PREFIX = "src/csl"  # where the package lives relative to the project (the repository layout)

# The dispatcher (the ``csl.cli`` package: module-level imports only; every group's parser runs on
# every command) and what a stage command runs: its parameters and its entry module.
SHALLOW = ("csl.cli",)
_COMMAND = ("csl.cli", "csl.cli.stages", "csl.params")
STAGE_ENTRIES: dict[str, tuple[str, ...]] = {
    "prepare": (*_COMMAND, "csl.stages.prepare"),
    "pretrain": (*_COMMAND, "csl.stages.pretrain"),
    "features": (*_COMMAND, "csl.stages.features"),
    "linear-eval": (*_COMMAND, "csl.stages.linear_eval"),
    "probe": (*_COMMAND, "csl.stages.probe"),
    "finetune": (*_COMMAND, "csl.stages.finetune"),
    "distill": (*_COMMAND, "csl.stages.distill"),
    "prepare-transfer": (*_COMMAND, "csl.stages.transfer"),
    "transfer": (*_COMMAND, "csl.stages.transfer"),
    "register": (*_COMMAND, "csl.stages.register"),
    "report": (*_COMMAND, "csl.stages.report"),
}
# What determines the weights a pretraining computes (not how it is logged or where it is written):
# the checkpoint key's code fingerprint. Tracking and the stage's I/O shell are left out, so a change
# there does not throw away an interrupted run's checkpoints.
RESULT_ROOTS = ("csl.train.fit",)
RESULT_EXCLUDE = ("csl.tracking", "csl.stages", "csl.cli")


def module_file(name: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The source file of ``csl`` module ``name`` under ``root`` (``.py`` or package ``__init__``)."""
    parts = name.split(".")
    if parts[0] != "csl":
        return None
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(tree: ast.Module, name: str, is_package: bool, top_level_only: bool, root: Path) -> set[str]:
    """``csl`` modules imported in ``tree`` (``from X import y`` counts ``X.y`` when it is a module)."""
    found: set[str] = set()
    nodes: Iterable[ast.AST] = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "csl")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "csl":
                continue
            found.add(base)
            for a in node.names:
                if module_file(f"{base}.{a.name}", root) is not None:
                    found.add(f"{base}.{a.name}")
    return found


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def closure(roots: Iterable[str], root: Path = PACKAGE_ROOT, shallow: Iterable[str] = SHALLOW,
            exclude: Iterable[str] = ()) -> set[str]:
    """Every ``csl`` module reachable from ``roots`` through imports (see module doc)."""
    shallow, exclude = tuple(shallow), tuple(exclude)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        f = module_file(name, root)
        if f is None:
            continue
        seen.add(name)
        todo.extend(_parents(name))
        top_only = any(name == s or name.startswith(s + ".") for s in shallow)
        todo.extend(_imports(_parse(f), name, f.name == "__init__.py", top_only, root))
    return seen


def stage_files(stage: str, root: Path = PACKAGE_ROOT) -> list[Path]:
    """The source files of ``stage``'s code, relative to the package's parent (``csl/...``)."""
    files = {module_file(m, root) for m in closure(STAGE_ENTRIES[stage], root)}
    return sorted(f.relative_to(root.parent) for f in files if f is not None)


def covered(file: Path, deps: Iterable[str]) -> bool:
    """Whether ``file`` (``src/csl/...``) is a dep itself or lies under a dep directory."""
    return any(file == Path(d) or Path(d) in file.parents for d in deps)


def minimal_deps(files: Iterable[Path], root: Path = PACKAGE_ROOT) -> list[str]:
    """``files`` (``csl/...``) as project paths, a directory standing for all of its files when every
    ``.py`` file below it is needed (so a new module there is covered too)."""
    need = {SRC_PREFIX + "/" + f.relative_to("csl").as_posix() for f in files}
    out: set[str] = set()
    for f in sorted(need):
        parent = Path(f).parent
        chosen = f
        while parent != Path(SRC_PREFIX):
            pkg_files = {SRC_PREFIX + "/" + p.relative_to(root).as_posix()
                         for p in (root / parent.relative_to(SRC_PREFIX)).rglob("*.py")}
            if pkg_files <= need:
                chosen = parent.as_posix()
            parent = parent.parent
        out.add(chosen)
    return sorted(out)


def code_deps(stage: str, root: Path = PACKAGE_ROOT) -> list[str]:
    """The code ``deps`` of ``stage`` in ``dvc.yaml`` (project-relative paths)."""
    return minimal_deps(stage_files(stage, root), root)


def missing(stage: str, deps: Iterable[str], root: Path = PACKAGE_ROOT) -> list[str]:
    """Source files ``stage`` imports that ``deps`` do not cover."""
    deps = list(deps)
    files = [Path(SRC_PREFIX) / f.relative_to("csl") for f in stage_files(stage, root)]
    return [f.as_posix() for f in files if not covered(f, deps)]


def check_dvc_yaml(dvc_yaml: Path, root: Path = PACKAGE_ROOT) -> list[str]:
    """Problems of ``dvc_yaml``: a stage missing, or a module a stage imports that its deps miss."""
    import yaml

    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {})
    problems = []
    for stage in STAGE_ENTRIES:
        if stage not in stages:
            problems.append(f"stage {stage!r} is not in {dvc_yaml}")
            continue
        for f in missing(stage, stages[stage].get("deps", []), root):
            problems.append(f"{stage}: imports {f}, which its deps do not cover")
    return problems


def write_dvc_yaml(dvc_yaml: Path, root: Path = PACKAGE_ROOT) -> None:
    """Rewrite every stage's code deps (paths under ``src/``) from :func:`code_deps`, keeping the
    other deps (data, outputs of earlier stages) first and the file's comments."""
    import io

    from ruamel.yaml import YAML

    from csl.io import atomic_write_text

    rt = YAML()
    rt.indent(mapping=2, sequence=4, offset=2)
    doc = rt.load(dvc_yaml.read_text())
    for stage in STAGE_ENTRIES:
        deps = doc["stages"][stage]["deps"]
        keep = [d for d in deps if not str(d).startswith("src/")]
        deps.clear()
        deps.extend(keep + code_deps(stage, root))
    buf = io.StringIO()
    rt.dump(doc, buf)
    atomic_write_text(dvc_yaml, buf.getvalue())


def fingerprint(roots: Iterable[str] = RESULT_ROOTS, exclude: Iterable[str] = RESULT_EXCLUDE,
                root: Path = PACKAGE_ROOT) -> str:
    """sha256 (16 hex digits) of the source of the code that determines a pretraining's result, as this
    process imports it, with the versions of torch and Lightning: part of the checkpoint key, so a
    checkpoint is resumed only by the same computation."""
    import lightning
    import torch

    h = hashlib.sha256()
    for name in sorted(closure(roots, root, exclude=exclude)):
        f = module_file(name, root)
        assert f is not None
        h.update(f"{name}\0".encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    h.update(f"torch {torch.__version__} lightning {lightning.__version__}".encode())
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m csl.stages.deps", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["check", "write", "show"])
    p.add_argument("--dvc-yaml", default="dvc.yaml")
    args = p.parse_args(argv)
    path = Path(args.dvc_yaml)
    if args.action == "show":
        for stage in STAGE_ENTRIES:
            print(f"{stage}: " + " ".join(code_deps(stage)))
        print(f"result fingerprint: {fingerprint()}")
        return 0
    if args.action == "write":
        write_dvc_yaml(path)
    problems = check_dvc_yaml(path)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
