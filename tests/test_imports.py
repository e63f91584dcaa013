"""The library parts of csl import none of the orchestration stack (kfp, kubernetes, dvc, mlflow,
boto3): ``pip install csl`` without extras is enough to use them."""

from __future__ import annotations

import json
import subprocess
import sys

LIBRARY = ["csl", "csl.augment", "csl.encoders", "csl.encoders.saved", "csl.extract", "csl.similarity", "csl.losses",
           "csl.methods", "csl.train", "csl.train.fit", "csl.evaluate", "csl.evaluate.protocol", "csl.data",
           "csl.params", "csl.registry", "csl.distributed", "csl.catalog"]
ORCHESTRATION = ["kfp", "kubernetes", "dvc", "mlflow", "boto3"]


def imported_after(modules: list[str]) -> set[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_library_imports_no_orchestration_package() -> None:
    loaded = imported_after(LIBRARY)
    assert "torch" in loaded and "csl" in loaded  # the check sees what was imported
    assert loaded.isdisjoint(ORCHESTRATION), sorted(loaded & set(ORCHESTRATION))


def test_the_check_would_see_an_orchestration_import() -> None:
    assert "mlflow" in imported_after(["csl.tracking.model_registry", "mlflow"])
    assert "dvc" in imported_after(["dvc.repo"])


def test_a_missing_extra_is_named(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A command whose optional dependency is absent says which extra to install."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'mlflow': raise ModuleNotFoundError(\"No module named 'mlflow'\", name='mlflow')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from csl.cli import main\n"
            f"sys.exit(main(['--project', {str(tmp_path)!r}, 'registry', 'list']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "pip install 'csl[tracking]'" in out.stderr and "mlflow" in out.stderr
