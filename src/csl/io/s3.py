"""Objects on S3 (or any S3-protocol store: MinIO, Ceph, moto's server) for checkpoints and
artifacts.

Credentials and the endpoint come from the environment, never from params.yaml: boto3's
usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role),
the endpoint from ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL``
(the variable the MLflow settings already carry). An S3 PUT is atomic: a reader sees the old
object or the whole new one, never part of it; a download goes to a temporary name and is
renamed, like every local write in csl.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csl.errors import StorageError

ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")


@dataclass(frozen=True)
class S3Path:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> "S3Path":
        if not uri.startswith("s3://"):
            raise StorageError(f"{uri!r} is not an S3 URI; write s3://BUCKET/PREFIX")
        bucket, _, key = uri[5:].partition("/")
        if not bucket:
            raise StorageError(f"{uri!r} names no bucket; write s3://BUCKET/PREFIX")
        return cls(bucket, key.strip("/"))

    def __truediv__(self, part: str) -> "S3Path":
        return S3Path(self.bucket, f"{self.key}/{part}".strip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_s3(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith("s3://")


def endpoint() -> str | None:
    return next((os.environ[k] for k in ENDPOINT_ENV if os.environ.get(k)), None)


def client() -> Any:
    import boto3
    from botocore.config import Config

    # a few retries with backoff for transient errors; short timeouts so that an unreachable
    # endpoint fails in seconds with our message, not after minutes
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    # a new session each time: the environment (credentials, endpoint) is read now, not cached
    return boto3.session.Session().client("s3", endpoint_url=endpoint(), config=cfg)


def _explain(e: Exception, what: str, path: S3Path) -> StorageError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = f"endpoint {endpoint()}" if endpoint() else "AWS's default endpoint"
    if isinstance(e, NoCredentialsError):
        return StorageError(f"cannot {what} {path}: no S3 credentials. Set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY (on Kubernetes: the csl-credentials Secret)")
    if isinstance(e, EndpointConnectionError) or type(e).__name__ in ("ConnectTimeoutError", "ReadTimeoutError"):
        return StorageError(f"cannot {what} {path}: the S3 {where} is unreachable ({e}). Start the object "
                            "store or set AWS_ENDPOINT_URL_S3 (or MLFLOW_S3_ENDPOINT_URL) to its address")
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404") and what == "reach bucket of":
            return StorageError(f"bucket {path.bucket!r} does not exist at the S3 {where}; create it or fix "
                                "the URI in params.yaml (storage.*) or CSL_CHECKPOINT_URI/CSL_ARTIFACT_URI")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(f"cannot {what} {path}: access denied ({code}); check the S3 credentials "
                                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the bucket policy")
        return StorageError(f"cannot {what} {path}: S3 error {code or e}")
    return StorageError(f"cannot {what} {path}: {type(e).__name__}: {e}")


def check_bucket(uri: str) -> None:
    """Fail early, with the fix, when the bucket of ``uri`` cannot be reached or written."""
    path = S3Path.parse(uri)
    try:
        client().head_bucket(Bucket=path.bucket)
    except Exception as e:  # noqa: BLE001 - turned into a StorageError that names the fix
        raise _explain(e, "reach bucket of", path) from None


def upload(local: str | os.PathLike[str], uri: str | S3Path) -> None:
    path = uri if isinstance(uri, S3Path) else S3Path.parse(uri)
    try:
        client().upload_file(str(local), path.bucket, path.key)
    except Exception as e:  # noqa: BLE001
        raise _explain(e, "upload to", path) from None


def copy(src: S3Path, dst: S3Path) -> None:
    try:
        client().copy_object(Bucket=dst.bucket, Key=dst.key, CopySource={"Bucket": src.bucket, "Key": src.key})
    except Exception as e:  # noqa: BLE001
        raise _explain(e, "copy to", dst) from None


def exists(uri: str | S3Path) -> bool:
    from botocore.exceptions import ClientError

    path = uri if isinstance(uri, S3Path) else S3Path.parse(uri)
    try:
        client().head_object(Bucket=path.bucket, Key=path.key)
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise _explain(e, "read", path) from None
    except Exception as e:  # noqa: BLE001
        raise _explain(e, "read", path) from None


def open_stream(uri: str | S3Path, what: str = "read") -> Any:
    """A readable binary stream of an object's body (read it in order; close it when done)."""
    path = uri if isinstance(uri, S3Path) else S3Path.parse(uri)
    try:
        return client().get_object(Bucket=path.bucket, Key=path.key)["Body"]
    except Exception as e:  # noqa: BLE001
        raise _explain(e, what, path) from None


def download(uri: str | S3Path, local: str | os.PathLike[str]) -> None:
    """Download to a temporary name beside ``local``, then rename (atomic, like local writes)."""
    path = uri if isinstance(uri, S3Path) else S3Path.parse(uri)
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".tmp", dir=local.parent)
    os.close(fd)
    try:
        client().download_file(path.bucket, path.key, tmp)
        os.replace(tmp, local)
    except Exception as e:  # noqa: BLE001
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _explain(e, "download", path) from None


def upload_dir(local: str | os.PathLike[str], uri: str | S3Path) -> list[str]:
    """Upload every file under ``local`` (relative paths kept); returns the object URIs."""
    base = uri if isinstance(uri, S3Path) else S3Path.parse(uri)
    done = []
    for f in sorted(Path(local).rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            dst = base / f.relative_to(local).as_posix()
            upload(f, dst)
            done.append(str(dst))
    return done


def download_dir(uri: str | S3Path, local: str | os.PathLike[str]) -> list[Path]:
    """Download every object under the prefix ``uri`` into ``local`` (relative keys kept);
    an empty prefix is a StorageError."""
    base = uri if isinstance(uri, S3Path) else S3Path.parse(uri)
    try:
        pages = client().get_paginator("list_objects_v2").paginate(Bucket=base.bucket, Prefix=base.key + "/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    except Exception as e:  # noqa: BLE001
        raise _explain(e, "list", base) from None
    if not keys:
        raise StorageError(f"nothing under {base}: the producer did not upload its outputs there")
    out = []
    for key in keys:
        dst = Path(local) / key[len(base.key) + 1 :]
        download(S3Path(base.bucket, key), dst)
        out.append(dst)
    return out


def list_objects(uri: str | S3Path) -> list[tuple[str, int, str]]:
    """``(key, size, ETag)`` of every object under the prefix ``uri`` (all pages), sorted by key."""
    base = uri if isinstance(uri, S3Path) else S3Path.parse(uri)
    prefix = f"{base.key}/" if base.key else ""
    try:
        pages = client().get_paginator("list_objects_v2").paginate(Bucket=base.bucket, Prefix=prefix)
        return sorted((o["Key"], int(o["Size"]), str(o.get("ETag", ""))) for page in pages
                      for o in page.get("Contents", []))
    except Exception as e:  # noqa: BLE001
        raise _explain(e, "list", base) from None


def list_keys(uri: str | S3Path) -> list[str]:
    """Every object key under the prefix ``uri`` (all pages), sorted."""
    return [key for key, _, _ in list_objects(uri)]


def read_bytes(uri: str | S3Path) -> bytes:
    """An object's whole body."""
    stream = open_stream(uri, "read")
    try:
        return bytes(stream.read())
    finally:
        stream.close()
