#!/usr/bin/env bash
# Make the default dataset (Fashion-MNIST) available offline.
# Order: $CSL_FASHION_MNIST_DIR, then Debian's package dataset-fashion-mnist (installed
# with apt-get when missing and apt is usable), else print exactly what to do.
set -euo pipefail
DEB_DIR=/usr/share/datasets/fashion-mnist
have() { [ -f "$1/train-images-idx3-ubyte.gz" ] || [ -f "$1/train-images-idx3-ubyte" ]; }

if [ -n "${CSL_FASHION_MNIST_DIR:-}" ] && have "$CSL_FASHION_MNIST_DIR"; then
  echo "Fashion-MNIST: using \$CSL_FASHION_MNIST_DIR=$CSL_FASHION_MNIST_DIR"; exit 0
fi
if have "$DEB_DIR"; then echo "Fashion-MNIST: found in $DEB_DIR"; exit 0; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
if command -v apt-get >/dev/null && [ "$SUDO" != "none" ]; then
  echo "Fashion-MNIST: installing the Debian package dataset-fashion-mnist ..."
  if ! $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null
  fi
  have "$DEB_DIR" && { echo "Fashion-MNIST: installed in $DEB_DIR"; exit 0; }
fi
cat >&2 <<MSG
Fashion-MNIST is not available and could not be installed automatically. Provide it one way:
  1. Debian/Ubuntu:  sudo apt-get install dataset-fashion-mnist   (then run this again)
  2. a directory with the four IDX files (.gz or not):
       export CSL_FASHION_MNIST_DIR=/path/to/fashion-mnist
  3. with internet access: set 'data.download: true' in params.yaml
MSG
exit 1
