"""The registry as deployed (k8s/mlflow): ``mlflow server`` on a real PostgreSQL with artifacts in S3
(moto's server). Registration, lineage, ``csl embed`` from the registry URI (the same numbers as the
pipeline's features), the model served as it is by ``mlflow models serve`` (the same embeddings as
in-process; a wrong input refused with the shape it expects), and the KServe InferenceService of it
(its storage URI holds the model's files in the bucket; the manifest validates against the CRD)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from conftest import BIN, csl_env, free_port

VARIANT = "simclr-tiny"
NAME = "csl-encoder-fashion-mnist-simclr-tiny"


def post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def serve(model_uri: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log, "ab") as f:
        proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("mlflow models serve did not start:\n" + log.read_text()[-4000:])
        time.sleep(0.5)


def test_registry_on_postgres_and_s3_embed_and_serving(project: Path, mlflow_server_postgres, s3,  # type: ignore[no-untyped-def]
                                                       postgres: str) -> None:
    import boto3
    import psycopg2
    import torch

    url, bucket = mlflow_server_postgres
    endpoint = s3[0]
    env = {**csl_env(project), "MLFLOW_TRACKING_URI": url}

    def csl(*args: str) -> str:
        r = subprocess.run([str(BIN / "csl"), *args], cwd=project, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout

    for stage in ("prepare", "pretrain", "features", "linear-eval"):
        csl(stage, *(["--variant", VARIANT] if stage != "prepare" else []))
    assert f"registered models:/{NAME}/1 (champion)" in csl("register", "--variant", VARIANT)
    # PostgreSQL holds the registry: the version and its lineage tags are rows there
    with psycopg2.connect(postgres.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM model_versions WHERE name = %s", (NAME,))
        assert cur.fetchall() == [(1,)]
        cur.execute("SELECT value FROM model_version_tags WHERE name = %s AND key = 'csl.encoder_sha256'", (NAME,))
        sha = cur.fetchone()[0]
    assert f"{NAME}" in csl("registry", "list")
    chain = json.loads(csl("lineage", f"models:/{NAME}@champion", "--json"))
    assert chain["model"]["encoder_sha256"] == sha
    assert set(chain["stage_runs"]) == {"pretrain", "features", "linear-eval", "register"}

    # csl embed from the registry URI: the prepared test images as PNG files -> the pipeline's test features
    from csl import data as csl_data

    prepared = csl_data.load(project / "data" / "prepared")
    images = prepared.test.images  # uint8 (N, 1, 16, 16)
    folder = project / "to-embed"
    names = []
    for i, img in enumerate(images):
        names.append(f"img/{i:05d}.png")
        (folder / names[-1]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(folder / names[-1])
    csl("embed", f"models:/{NAME}@champion", str(folder), "-o", str(project / "emb"), "--no-progress")
    assert (project / "emb" / "paths.txt").read_text().split() == names
    features = np.load(project / "runs" / VARIANT / "features" / "test.npy")
    assert np.array_equal(np.load(project / "emb" / "embeddings.npy"), features)
    manifest = json.loads((project / "emb" / "embed.json").read_text())
    assert manifest["model_version"] == f"models:/{NAME}/1" and manifest["encoder_sha256"] == sha

    # the registered model served as it is: the signature's uint8 (N, 1, 16, 16) batch in, embeddings out
    batch = images[:3]
    proc, serve_url = serve(f"models:/{NAME}@champion", env, project / "serve.log")
    try:
        status, out = post(serve_url + "/invocations", {"inputs": batch.tolist()})
        assert status == 200, out
        served = np.asarray(out["predictions"], dtype=np.float32)
        import mlflow

        import csl as csl_api

        before = mlflow.get_tracking_uri()  # another test in this process may have set one: it would win
        mlflow.set_tracking_uri(url)
        try:
            local = csl_api.load_encoder(f"models:/{NAME}@champion")
        finally:
            mlflow.set_tracking_uri(before)
        with torch.no_grad():
            expected = local(torch.from_numpy(batch)).numpy()
        assert served.shape == (3, 16) and np.allclose(served, expected, atol=1e-5)
        status, out = post(serve_url + "/invocations", {"inputs": np.zeros((2, 3, 16, 16), np.uint8).tolist()})
        assert status == 400 and "shape" in out["message"].lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    # KServe: the storage URI is where the server keeps the model's files in the bucket
    text = csl("k8s", "serve-manifest", f"models:/{NAME}@champion", "--artifacts-destination",
               f"s3://{bucket}/mlflow", "--namespace", "serving", "-o", str(project / "isvc.yaml"))
    docs = list(yaml.safe_load_all((project / "isvc.yaml").read_text()))
    assert text == "" and [d["kind"] for d in docs] == ["ServiceAccount", "InferenceService"]
    storage = docs[1]["spec"]["predictor"]["model"]["storageUri"]
    assert storage.startswith(f"s3://{bucket}/mlflow/")
    prefix = storage.removeprefix(f"s3://{bucket}/")
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(
        Bucket=bucket, Prefix=prefix)["Contents"]]
    assert f"{prefix}/MLmodel" in keys and any(k.endswith("model.pth") or k.endswith(".pth") for k in keys), keys
    assert docs[1]["metadata"]["annotations"]["csl.dev/encoder-sha256"] == sha
    assert "valid ServiceAccount, InferenceService" in csl("k8s", "validate", str(project / "isvc.yaml"))
