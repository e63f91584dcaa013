"""``csl reproduce MODEL_URI``: retrain a registered encoder from its lineage and compare.

The proof that a registered encoder's lineage is true. From the model version's tags:

1. the recorded git commit is checked out in a scratch worktree (``git worktree add --detach``);
   a version registered from uncommitted changes (``csl.git_dirty``) cannot be rebuilt from its
   commit alone, and is reported so;
2. the recorded data: a DVC-versioned dataset fetched by revision (``csl.data.repo``/``rev``) is
   fetched again; otherwise the commit's own ``prepare`` stage runs through DVC (restored from
   this project's DVC cache when it holds the outputs), and the md5 DVC records for
   ``data/prepared`` must equal the recorded ``csl.data.dvc_md5``;
3. the commit's ``params.yaml`` must hash to the recorded ``csl.params_hash``;
4. the commit's code pretrains the recorded variant (its own ``csl`` via ``PYTHONPATH``, a scratch
   MLflow store, no checkpoint to resume, no object storage);
5. the new ``encoder.pt`` is compared with the registered one: its sha256 against the version's
   ``csl.encoder_sha256``, and its weights against the weights of the registered model itself
   (loaded from the registry). Reproduced = bit-identical, or, with ``atol > 0`` (runs that are
   not deterministic, e.g. on a GPU), every weight within ``atol``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from csl.errors import CslError
from csl.stages.layout import PREPARED, variant_rel


@dataclass
class Reproduction:
    model_uri: str
    variant: str
    commit: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, passed, detail)
    max_abs_diff: float | None = None
    bit_identical: bool = False
    workdir: str = ""

    @property
    def reproduced(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def check(self, what: str, ok: bool, detail: str) -> bool:
        self.checks.append((what, ok, detail))
        return ok

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checks": [{"check": w, "passed": ok, "detail": d} for w, ok, d in self.checks],
                "reproduced": self.reproduced}

    def text(self) -> str:
        lines = [f"reproducing {self.model_uri} ({self.variant}) at git {self.commit}"]
        lines += [f"  [{'ok' if ok else 'FAIL'}] {what}: {detail}" for what, ok, detail in self.checks]
        if self.max_abs_diff is not None:
            lines.append(f"  largest weight difference: {self.max_abs_diff:.3g}")
        verdict = ("REPRODUCED: bit-identical encoder" if self.reproduced and self.bit_identical else
                   "REPRODUCED within tolerance" if self.reproduced else "NOT REPRODUCED")
        lines.append(verdict)
        return "\n".join(lines)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise CslError(f"{what} failed in {cwd} ({' '.join(cmd)}):\n{(out.stdout + out.stderr)[-3000:]}")
    return out.stdout


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise CslError(f"the '{name}' command is not installed; run 'make setup'")
    return found


def _env(wd: Path) -> dict[str, str]:
    """The commit's own code first on the path; a scratch store; nothing inherited from a pipeline."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CSL_PARENT_RUN_ID", "CSL_PIPELINE_RUN_ID", "KFP_RUN_ID", "CSL_CHECKPOINT_URI",
                        "CSL_ARTIFACT_URI")}
    env["PYTHONPATH"] = os.pathsep.join([str(wd / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{wd / '.reproduce-mlflow.db'}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _state(obj: Any) -> dict[str, Any]:
    import torch

    sd = obj.state_dict() if isinstance(obj, torch.nn.Module) else obj
    return {k: v.detach().cpu() for k, v in sd.items()}


def compare_weights(registered: Any, payload: dict[str, Any]) -> float:
    """Largest absolute difference between the registered model's encoder weights and the
    reproduced ``encoder.pt``'s (inf when the architectures differ)."""
    import torch

    reg = {k.removeprefix("encoder."): v for k, v in _state(registered).items() if k.startswith("encoder.")}
    new = _state(payload["state_dict"])
    if reg.keys() != new.keys() or any(reg[k].shape != new[k].shape for k in reg):
        return float("inf")
    diffs = [(reg[k].double() - new[k].double()).abs().max().item() for k in reg if reg[k].numel()]
    return float(max(diffs, default=0.0)) if all(torch.isfinite(new[k]).all() for k in new) else float("inf")


def reproduce(project: Path, model_uri: str, workdir: Path | None = None, keep: bool = False,
              atol: float = 0.0) -> Reproduction:
    """See the module doc. Raises :class:`CslError` when the attempt cannot be made (no commit
    recorded, the commit is not in this repository, a stage of the commit fails)."""
    import mlflow
    import torch

    from csl.tracking import model_registry

    mv = model_registry.resolve(model_uri)
    t = mv.tags
    variant, commit = t.get("csl.variant", ""), t.get("csl.git_commit", "")
    if not variant or not commit or commit == "unknown":
        raise CslError(f"{model_uri} records no variant or git commit (tags csl.variant, csl.git_commit): its "
                       "lineage cannot be replayed")
    git = _tool("git")
    if subprocess.run([git, "cat-file", "-e", f"{commit}^{{commit}}"], cwd=project, capture_output=True).returncode:
        raise CslError(f"commit {commit} of {model_uri} is not in the repository at {project}; fetch it "
                       "(git fetch) and try again")
    rep = Reproduction(f"models:/{mv.name}/{mv.version}", variant, commit)
    rep.check("committed code", t.get("csl.git_dirty") != "True",
              "registered from a clean checkout" if t.get("csl.git_dirty") != "True" else
              "registered from uncommitted changes: the commit does not hold the code that trained it")
    scratch = Path(tempfile.mkdtemp(prefix="csl-reproduce-", dir=workdir))
    wd = scratch / "worktree"
    rep.workdir = str(wd)
    _run([git, "worktree", "add", "--detach", str(wd), commit], project, dict(os.environ), "git worktree add")
    try:
        env = _env(wd)
        _data(rep, project, wd, env, t)
        _params(rep, wd, env, variant, t.get("csl.params_hash", ""))
        _run([_tool("csl"), "pretrain", "--variant", variant, *_no_storage(wd)], wd, env,
             f"pretraining {variant} at {commit[:12]}")
        enc = wd / variant_rel(variant) / "pretrain" / "encoder.pt"
        new_sha = model_registry.file_sha256(enc)
        rep.bit_identical = new_sha == t.get("csl.encoder_sha256")
        registered = mlflow.pytorch.load_model(f"models:/{mv.name}/{mv.version}", map_location="cpu")
        payload = torch.load(enc, map_location="cpu", weights_only=True)
        rep.max_abs_diff = compare_weights(registered, payload)
        rep.check("registered weights", rep.max_abs_diff <= atol,
                  f"the registered model's weights and the reproduced encoder's differ by at most "
                  f"{rep.max_abs_diff:.3g} (tolerance {atol:g})")
        if atol == 0.0:
            rep.check("encoder file", rep.bit_identical,
                      f"sha256 {new_sha[:16]}... {'equals' if rep.bit_identical else 'differs from'} the registered "
                      f"csl.encoder_sha256 {str(t.get('csl.encoder_sha256'))[:16]}...")
    finally:
        if not keep:
            subprocess.run([git, "worktree", "remove", "--force", str(wd)], cwd=project, capture_output=True)
            shutil.rmtree(scratch, ignore_errors=True)
    return rep


def _no_storage(wd: Path) -> list[str]:
    """Overrides that keep the retraining off object storage (no remote checkpoint to resume, no upload):
    ``null`` for each ``storage`` key the commit's params.yaml sets."""
    import yaml

    storage = (yaml.safe_load((wd / "params.yaml").read_text()) or {}).get("storage") or {}
    return [f"storage.{k}=null" for k in ("checkpoints", "artifacts") if storage.get(k)]


def _data(rep: Reproduction, project: Path, wd: Path, env: dict[str, str], t: dict[str, str]) -> None:
    """The recorded dataset in the worktree, and whether DVC's md5 of it equals the recorded one."""
    import yaml

    want = t.get("csl.data.dvc_md5", "")
    if t.get("csl.data.repo"):
        _run([_tool("csl"), "fetch-data", "--repo", t["csl.data.repo"], "--rev", t.get("csl.data.rev", "HEAD"),
              "--no-track"], wd, env, "fetching the recorded data revision")
        origin = json.loads((wd / "data" / "prepared.origin.json").read_text())
        got = str(origin.get("md5", ""))
    else:
        dvc = _tool("dvc")
        cache = project / ".dvc" / "cache"
        if cache.is_dir():  # restore the recorded outputs from this project's cache when it has them
            _run([dvc, "cache", "dir", "--local", str(cache)], wd, env, "dvc cache dir")
        _run([dvc, "repro", "--single-item", "prepare"], wd, env, "the commit's prepare stage")
        lock = yaml.safe_load((wd / "dvc.lock").read_text()) or {}
        outs = (lock.get("stages", {}).get("prepare", {}) or {}).get("outs", []) or []
        got = next((str(o.get("md5")) for o in outs if o.get("path") == PREPARED), "")
    rep.check("data", bool(want) and got == want, f"DVC md5 of {PREPARED}: recorded {want or 'none'}, obtained {got}")


def _params(rep: Reproduction, wd: Path, env: dict[str, str], variant: str, want: str) -> None:
    """Whether the commit's params.yaml hashes (with the commit's code) to the recorded hash."""
    code = ("import sys; from pathlib import Path; from csl.params import load_params; "
            "from csl.stages.register import params_hash; "
            "p = load_params(Path('params.yaml')); "
            "print(params_hash(p, p.variant(sys.argv[1]) if hasattr(p, 'variant') else sys.argv[1]))")
    got = _run([sys.executable, "-c", code, variant], wd, env, "hashing the commit's parameters").strip()
    rep.check("parameters", got == want, f"sha256 of the resolved parameters: recorded {want[:16] or 'none'}..., "
                                         f"at the commit {got[:16]}...")
