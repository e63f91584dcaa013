#!/usr/bin/env bash
# The manifest tests render k8s/ with `kubectl kustomize` (offline). Make sure a kubectl with
# kustomize is on PATH: keep the one there, else install Debian's kubernetes-client (apt, as root
# or with passwordless sudo), else say what to do. Exit 0 when kubectl kustomize works.
set -euo pipefail
works() { command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; }
if works; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
if command -v apt-get >/dev/null && [ "$SUDO" != "none" ]; then
  echo "kubectl: installing the Debian package kubernetes-client (for kubectl kustomize) ..."
  $SUDO apt-get install -y -q kubernetes-client >/dev/null 2>&1 || \
    { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q kubernetes-client >/dev/null; }
fi
if works; then exit 0; fi
echo "kubectl (with kustomize) is not available: install kubectl (Debian: apt-get install kubernetes-client)" >&2
exit 1
