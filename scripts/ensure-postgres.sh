#!/usr/bin/env bash
# The registry tests run MLflow on a real PostgreSQL (as k8s/mlflow deploys it). Make sure the server
# binaries (initdb, pg_ctl) are installed: keep them when present, else install Debian's postgresql
# package (apt, as root or with passwordless sudo; no cluster is started), else say what to do.
set -euo pipefail
works() { command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
if works; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
if command -v apt-get >/dev/null && [ "$SUDO" != "none" ]; then
  echo "postgresql: installing the Debian package (server binaries for the registry tests) ..."
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 || \
    { $SUDO apt-get update -q >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
fi
if works; then exit 0; fi
echo "PostgreSQL server binaries (initdb, pg_ctl) are not available: install them (Debian: apt-get install postgresql)" >&2
exit 1
