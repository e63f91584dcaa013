"""A real PostgreSQL server for tests: Debian's package (``postgresql``, installed by
``scripts/ensure-postgres.sh`` in ``make test``), a fresh cluster in a temporary directory,
listening on loopback only, trust authentication for one database user. PostgreSQL refuses to
run as root: under root the cluster belongs to (and runs as) the ``postgres`` system user."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def deployed_scheme() -> str:
    """The backend-store URI scheme k8s/mlflow's server uses (its SQLAlchemy driver): tests connect
    the same way. SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which the image lacks."""
    import re

    from conftest import REPO

    text = (REPO / "k8s" / "mlflow" / "mlflow.yaml").read_text()
    found = re.search(r"--backend-store-uri=([a-z0-9+]+)://", text)
    assert found, "k8s/mlflow/mlflow.yaml has no --backend-store-uri"
    return found.group(1)


def pg_bin() -> Path | None:
    """The directory of initdb/pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<major>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


class PostgresServer:
    def __init__(self, port: int, user: str = "mlflow") -> None:
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: run scripts/ensure-postgres.sh "
                               "(Debian: apt-get install postgresql)")
        self.bin, self.port, self.user = bindir, port, user
        # not under pytest's 0700 tmp: the postgres user must reach it
        self.root = Path(tempfile.mkdtemp(prefix="csl-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        r = subprocess.run([*self.as_user, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")

    def start(self) -> str:
        """Initialise the cluster, start it, create the database ``mlflow``; return its SQLAlchemy URL."""
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        return f"{deployed_scheme()}://{self.user}@127.0.0.1:{self.port}/mlflow"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                            "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
