"""A DVC-versioned dataset fetched by git revision: what the cloud pipeline's prepare step runs.

``fetch(repo, rev, path, out)`` resolves ``path`` (``data/prepared``) in the git repository
``repo`` (a URL or a local clone) at revision ``rev``, refuses anything DVC does not version
there (a path tracked by git only, or missing), downloads it from the repository's DVC remote,
checks every file's md5 against DVC's manifest at that revision, and writes it atomically to
``out`` with a sidecar ``<out>.origin.json`` (repo, resolved commit, path, md5, remote URL)
that the registry and the report read when there is no ``dvc.lock`` beside the data.
Credentials for the remote come from the environment (for S3: the boto3 chain, endpoint
from the remote's ``endpointurl`` or ``AWS_ENDPOINT_URL_S3``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from csl.errors import DataError
from csl.io import atomic_dir, atomic_write_text

ORIGIN_SUFFIX = ".origin.json"


@dataclass(frozen=True)
class Origin:
    repo: str
    rev: str  # the resolved git commit
    path: str
    md5: str  # DVC's md5 of the path at rev ("...dir" for a directory)
    remote: str  # the default DVC remote's URL


def origin_file(out: Path) -> Path:
    return out.with_name(out.name + ORIGIN_SUFFIX)


def read_origin(out: Path) -> Origin | None:
    f = origin_file(out)
    if not f.is_file():
        return None
    return Origin(**json.loads(f.read_text()))


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 (DVC's content address, not a security hash)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open(repo: str, rev: str, remote: tuple[str, dict[str, str]] | None = None) -> tuple[Any, str]:
    """The DVC filesystem of ``repo`` at ``rev`` (reading from ``remote`` when given) and the
    commit ``rev`` resolves to."""
    from dvc.api import DVCFileSystem

    try:
        kw = {"remote": remote[0], "remote_config": remote[1]} if remote else {}
        fs = DVCFileSystem(repo, rev=rev or None, **kw)
        return fs, str(fs.repo.get_rev())  # the commit of rev (scm.get_rev() is the checkout's HEAD)
    except Exception as e:  # SCMError, RevError, NotDvcRepoError, CloneError ...
        raise DataError(f"cannot open git revision '{rev or 'HEAD'}' of {repo} as a DVC repository "
                        f"({type(e).__name__}: {e}); check the repository URL and the revision") from None


def _committed_remote(fs: Any, commit: str) -> tuple[str, dict[str, str]] | None:
    """The default remote (name, settings) of ``.dvc/config`` as committed at ``commit``. DVC
    itself takes remotes from the checkout's working tree and adds an "upstream" remote (the
    checkout's cache) for local repositories; the pipeline uses the revision's own remote."""
    from configobj import ConfigObj

    try:
        with fs.repo.scm.get_fs(commit).open(".dvc/config", mode="r") as f:
            conf = ConfigObj(f.read().splitlines())
    except FileNotFoundError:
        return None
    name = conf.get("core", {}).get("remote")
    section = conf.get(f'remote "{name}"') if name else None
    return (str(name), dict(section)) if section and section.get("url") else None


def fetch(repo: str, rev: str, path: str, out: Path) -> Origin:
    """Download the DVC-versioned ``path`` of ``repo`` at ``rev`` into ``out`` (verified)."""
    fs, commit = _open(repo, rev)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist at {repo}@{commit[:12]}: nothing to fetch. Run 'dvc repro prepare' "
                        "there, commit dvc.lock and 'dvc push' the data") from None
    dvc_info = info.get("dvc_info") or {}
    md5 = dvc_info.get("md5") or info.get("md5")
    if not (dvc_info.get("isdvc") or dvc_info.get("isout")) or not md5:
        raise DataError(f"{path} at {repo}@{commit[:12]} is not versioned by DVC (no md5 in dvc.lock or a .dvc "
                        "file): the pipeline refuses unversioned data. Track it with 'dvc repro prepare' (or "
                        "'dvc add'), commit, and 'dvc push'")
    committed = _committed_remote(fs, commit)
    if committed is None:
        raise DataError(f"{repo}@{commit[:12]} has no default DVC remote: the pipeline can only use data that is "
                        "pushed. Add one ('dvc remote add -d NAME s3://BUCKET/PATH'), commit, and 'dvc push'")
    remote = committed[1]["url"]
    fs, _ = _open(repo, commit, committed)
    try:
        listing = fs.find(path, detail=True).values() if info["type"] == "directory" else [info]
    except Exception as e:  # DataIndexDirError: the directory manifest is not in the remote
        cause = f"; {type(e.__cause__).__name__}: {e.__cause__}" if e.__cause__ else ""
        raise DataError(f"cannot read {path} (md5 {md5}) of {repo}@{commit[:12]} from the DVC remote {remote} "
                        f"({type(e).__name__}: {e}{cause}); was it 'dvc push'ed, and are the remote's credentials "
                        "set?") from None
    files = [f for f in listing if f.get("type") == "file"]
    with atomic_dir(out) as tmp:
        for f in files:
            rel = Path(f["name"]).relative_to(path) if info["type"] == "directory" else Path(Path(path).name)
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get_file(f["name"], str(dst))
            except Exception as e:
                raise DataError(f"cannot download {f['name']} (md5 {f.get('md5')}) of {repo}@{commit[:12]} from the "
                                f"DVC remote {remote} ({type(e).__name__}: {e}); was it 'dvc push'ed, and are the "
                                "remote's credentials set?") from None
            got, want = _md5(dst), f.get("md5")
            if got != want:
                raise DataError(f"hash mismatch for {f['name']}: DVC records md5 {want} at {commit[:12]} but the remote "
                                f"{remote} returned {got}; the remote is corrupt or was overwritten. Push the data again "
                                "from a checkout that has it ('dvc push')")
    origin = Origin(repo=repo, rev=commit, path=path, md5=str(md5), remote=remote)
    atomic_write_text(origin_file(out), json.dumps(asdict(origin), indent=2) + "\n")
    return origin
