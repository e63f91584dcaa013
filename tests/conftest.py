"""Shared fixtures: tiny real-format datasets and a tiny csl project (no shared data used)."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def digits_images(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 8x8 digits upscaled to 16x16 uint8: ``(N, 16, 16)``, labels ``(N,)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = (d.images / 16.0 * 255).astype(np.uint8)
    imgs = np.kron(imgs, np.ones((1, 2, 2), dtype=np.uint8))
    labels = d.target.astype(np.uint8)
    if n is not None:
        imgs, labels = imgs[:n], labels[:n]
    return imgs, labels


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def make_idx_dir(root: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """A directory with Fashion-MNIST-named IDX files holding digits (16x16)."""
    imgs, labels = digits_images()
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte", imgs[:n_train])
    write_idx(root / "train-labels-idx1-ubyte", labels[:n_train])
    write_idx(root / "t10k-images-idx3-ubyte", imgs[n_train : n_train + n_test])
    write_idx(root / "t10k-labels-idx1-ubyte", labels[n_train : n_train + n_test])
    return root


def tiny_method(epochs: int = 1, **train: object) -> dict:
    return {
        "method": "simclr",
        "augment": {"name": "simclr", "crop_scale": [0.3, 1.0], "strength": 0.5},
        "encoder": {"name": "small_cnn", "widths": [8, 16]},
        "extract": {"name": "mlp_projection", "hidden_dim": 32, "out_dim": 16},
        "similarity": "cosine",
        "loss": {"name": "nt_xent", "temperature": 0.5},
        "optimizer": {"name": "lars", "lr": 0.5, "weight_decay": 1e-6},
        "schedule": {"warmup_epochs": 0.5},
        "train": {"epochs": epochs, "batch_size": 64, "progress_bar": False, "seed": 0, **train},
    }


def tiny_params(data_dir: Path, variants: dict[str, dict] | None = None) -> dict:
    variants = variants or {"simclr-tiny": tiny_method()}
    return {
        "data": {"dataset": "fashion-mnist", "source": str(data_dir)},
        "variants": list(variants),
        "methods": variants,
        # every key dvc.yaml reads from the file is written out (csl run checks)
        "eval": {"batch_size": 256, "random_baseline": True, "seed": 0,
                 "clustering": {"restarts": 2, "iterations": 20}, "retrieval": {"ks": [1, 5]},
                 "finetune": {"epochs": 1, "batch_size": 64}, "distill": {"epochs": 1},
                 "gallery": {"clusters": 4, "per_cluster": 4, "queries": 4, "neighbours": 3},
                 "transfer": {"datasets": {}},
                 "linear": {"epochs": 5, "batch_size": 128, "lr": 1e-2},
                 "knn": {"k": 20, "temperature": 0.1}, "map": {"method": "pca", "points": 100},
                 # the protocols' own tests turn them on (DVC's stage matrix reads every list from the file)
                 "run": {"probes": [], "finetune": [], "distill": [], "transfer": []}},
        "tracking": {"experiment": "csl-test"},
        "health": {"enabled": True, "samples": 64, "patience": 3},
    }


def csl_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("CSL_PARENT_RUN_ID", None)
    env.update({
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp / ".dvc-site"),
        "DVC_GLOBAL_CONFIG_DIR": str(tmp / ".dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(tmp / ".dvc-system"),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
        "PYTHONWARNINGS": "ignore",
    })
    return env


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    return make_idx_dir(tmp_path / "fmnist")


@pytest.fixture
def project(tmp_path: Path, idx_dir: Path) -> Path:
    """A project directory with tiny params.yaml (no git/DVC)."""
    p = tmp_path / "proj"
    p.mkdir()
    (p / "params.yaml").write_text(yaml.safe_dump(tiny_params(idx_dir), sort_keys=False))
    return p


def write_plan(project: Path) -> None:
    """``plan.yaml`` of the project's params.yaml, as ``csl plan`` writes it."""
    from csl.params import load_params
    from csl.stages import plan

    plan.write(project, load_params(project / "params.yaml"))


def make_dvc_project(tmp_path: Path, params: dict) -> tuple[Path, dict[str, str]]:
    """A git + DVC project with the repository's dvc.yaml and .gitignore and a copy of src/ (the code deps)."""
    p = tmp_path / "dvcproj"
    p.mkdir()
    shutil.copy(REPO / "dvc.yaml", p / "dvc.yaml")
    shutil.copytree(REPO / "src", p / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (p / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_plan(p)  # the stage lists dvc.yaml reads (csl run writes it; tests that call dvc directly need it)
    shutil.copy(REPO / ".gitignore", p / ".gitignore")  # what the repository keeps out of git
    env = csl_env(tmp_path)
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=p, env=env, check=True, capture_output=True)
    return p, env


@pytest.fixture
def prepared(idx_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A prepared dataset of 256 training and 64 test 16x16 digit images."""
    from csl.data import DataConfig, read, write
    from csl.data import load as load_prepared

    write(read(DataConfig(source=str(idx_dir), max_train=256, max_test=64), tmp_path, seed=0), tmp_path / "prep")
    return load_prepared(tmp_path / "prep")


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server():  # type: ignore[no-untyped-def]
    """A real S3-protocol HTTP server (moto's) on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The loopback S3 server with credentials and endpoint in this process's environment, and a
    fresh bucket; yields ``(endpoint, bucket, env)`` where ``env`` is for subprocesses."""
    import uuid

    import boto3

    env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3_server, "AWS_EC2_METADATA_DISABLED": "true", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_CONFIG_FILE": str(tmp_path / "none")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    bucket = f"csl-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    yield s3_server, bucket, env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """A real ``mlflow server`` subprocess on loopback (SQLite backend unless ``backend`` names
    another store, e.g. PostgreSQL; proxied artifacts); it can be stopped and started again on the
    same port and store."""

    def __init__(self, tmp: Path, artifacts: str, env: dict[str, str] | None = None,
                 backend: str | None = None) -> None:
        self.tmp, self.artifacts, self.env = tmp, artifacts, env or {}
        self.backend = backend or f"sqlite:///{tmp / 'server.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        import time
        import urllib.request

        env = {**os.environ, **self.env}
        env.pop("MLFLOW_TRACKING_URI", None)
        log = open(self.tmp / "mlflow-server.log", "ab")  # noqa: SIM115 (the server holds it)
        self.proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", self.backend, "--artifacts-destination",
             self.artifacts], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start:\n" + (self.tmp / "mlflow-server.log").read_text())
            time.sleep(0.5)

    def stop(self) -> None:
        import signal

        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@pytest.fixture
def mlflow_server(s3, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real ``mlflow server`` on loopback: SQLite backend, artifacts proxied to the loopback S3
    server (``s3://<bucket>/mlflow``), so clients need no S3 credentials. Yields
    ``(url, bucket)``."""
    endpoint, bucket, env = s3
    server = MlflowServer(tmp_path, f"s3://{bucket}/mlflow", {**env, "MLFLOW_S3_ENDPOINT_URL": endpoint})
    try:
        yield server.start(), bucket
    finally:
        server.stop()


@pytest.fixture
def postgres():  # type: ignore[no-untyped-def]
    """A real PostgreSQL server on loopback (see tests/postgres.py); yields the SQLAlchemy URL of
    an empty database ``mlflow``."""
    from postgres import PostgresServer

    server = PostgresServer(free_port())
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def mlflow_server_postgres(s3, postgres: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``mlflow server`` as k8s/mlflow deploys it: PostgreSQL backend store, artifacts proxied to S3
    (moto's server). Yields ``(url, bucket)``."""
    endpoint, bucket, env = s3
    server = MlflowServer(tmp_path, f"s3://{bucket}/mlflow", {**env, "MLFLOW_S3_ENDPOINT_URL": endpoint},
                          backend=postgres)
    try:
        yield server.start(), bucket
    finally:
        server.stop()
