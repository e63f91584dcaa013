"""dvc.yaml's code deps are derived from what each stage imports, and cover all of it; the
checkpoint key's code fingerprint follows the training code and nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from csl.stages import deps

REPO = Path(__file__).resolve().parents[1]


def test_every_stage_import_is_a_dep() -> None:
    assert deps.check_dvc_yaml(REPO / "dvc.yaml") == []


def test_dropping_any_code_dep_is_caught(tmp_path: Path) -> None:
    """Each code dep in dvc.yaml is needed: without it, the check names a module the stage imports."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    dropped = 0
    for stage in deps.STAGE_ENTRIES:
        code = [d for d in stages[stage]["deps"] if str(d).startswith("src/")]
        assert code == deps.code_deps(stage), f"{stage}: run 'python -m csl.stages.deps write'"
        for d in code:
            missing = deps.missing(stage, [x for x in stages[stage]["deps"] if x != d])
            assert missing and all(m == d or m.startswith(d + "/") for m in missing), (stage, d, missing)
            dropped += 1
    assert dropped > 5 * 5
    # and the real file, with one module taken out of pretrain's deps, fails the check
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    doc["stages"]["pretrain"]["deps"].remove("src/csl/losses")
    broken = tmp_path / "dvc.yaml"
    broken.write_text(yaml.safe_dump(doc))
    problems = deps.check_dvc_yaml(broken)
    assert "pretrain: imports src/csl/losses/nt_xent.py, which its deps do not cover" in problems
    assert all(p.startswith("pretrain: imports src/csl/losses/") for p in problems)


def test_stage_deps_name_the_code_the_issue_found_missing() -> None:
    """What the hand-written deps omitted (issue 13) is now covered."""
    covered = {s: deps.code_deps(s) for s in deps.STAGE_ENTRIES}
    for stage in deps.STAGE_ENTRIES:
        for f in ("src/csl/cli/__init__.py", "src/csl/params.py", "src/csl/config/strict.py", "src/csl/io/atomic.py",
                  "src/csl/stages/layout.py"):
            assert deps.covered(Path(f), covered[stage]), (stage, f)
    for f in ("src/csl/data/prepared.py", "src/csl/distributed.py", "src/csl/registry.py",
              "src/csl/tracking/runs.py", "src/csl/stages/deps.py"):
        assert deps.covered(Path(f), covered["pretrain"]), f
    for f in ("src/csl/encoders/saved.py", "src/csl/augment/views.py", "src/csl/data/prepared.py"):
        assert deps.covered(Path(f), covered["linear-eval"]), f
    for f in ("src/csl/encoders/saved.py", "src/csl/methods/config.py", "src/csl/tracking/model_registry.py"):
        assert deps.covered(Path(f), covered["register"]), f
    for f in ("src/csl/tracking/model_registry.py", "src/csl/data/prepared.py", "src/csl/report/plots.py"):
        assert deps.covered(Path(f), covered["report"]), f
    # the dispatcher is followed through its module-level imports only: a stage does not depend on
    # another stage's entry point
    assert not deps.covered(Path("src/csl/stages/report.py"), covered["pretrain"])
    assert not deps.covered(Path("src/csl/k8s/submit.py"), covered["pretrain"])


def test_register_declares_its_params() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages["register"]["params"] == ["methods.${item.variant}", "data", "eval"]


def _package(tmp_path: Path) -> Path:
    root = tmp_path / "csl"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from csl.sub.c import C  # noqa\n")
    (root / "sub" / "c.py").write_text("C = 1\n")
    (root / "a.py").write_text("def f():\n    from csl import b\n    return b\n")
    (root / "b.py").write_text("from . import d\nimport csl.sub\n")
    (root / "d.py").write_text("")
    (root / "e.py").write_text("X = 1\n")
    return root


def test_closure_follows_function_level_relative_and_package_imports(tmp_path: Path) -> None:
    root = _package(tmp_path)
    assert deps.closure(["csl.a"], root) == {"csl", "csl.a", "csl.b", "csl.d", "csl.sub", "csl.sub.c"}
    # shallow modules: only what they import at module level
    assert deps.closure(["csl.a"], root, shallow=["csl.a"]) == {"csl", "csl.a"}
    files = [p.relative_to(root.parent) for p in (root / "a.py", root / "b.py", root / "d.py", root / "__init__.py",
                                                   root / "sub" / "__init__.py", root / "sub" / "c.py")]
    assert deps.minimal_deps(files, root) == ["src/csl/__init__.py", "src/csl/a.py", "src/csl/b.py", "src/csl/d.py",
                                              "src/csl/sub"]


def test_write_is_idempotent_and_keeps_the_other_deps(tmp_path: Path) -> None:
    f = tmp_path / "dvc.yaml"
    shutil.copy(REPO / "dvc.yaml", f)
    deps.write_dvc_yaml(f)
    assert f.read_text() == (REPO / "dvc.yaml").read_text()
    doc = yaml.safe_load(f.read_text())
    assert doc["stages"]["pretrain"]["deps"][0] == "data/prepared"


def test_fingerprint_follows_the_training_code_only(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    root = tmp_path / "csl"
    shutil.copytree(deps.PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    base = deps.fingerprint(root=root)
    assert base == deps.fingerprint(root=root)
    nt = root / "losses" / "nt_xent.py"
    nt.write_text(nt.read_text() + "\nSCALE = 1.0\n")
    changed = deps.fingerprint(root=root)
    assert changed != base
    # logging and the stage shell do not compute the weights: a change there keeps resumable checkpoints
    for f in (root / "tracking" / "runs.py", root / "stages" / "pretrain.py", root / "report" / "plots.py"):
        f.write_text(f.read_text() + "\n# a comment\n")
    assert deps.fingerprint(root=root) == changed
