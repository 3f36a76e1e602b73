#!/usr/bin/env bash
# Makes sure the offline Fashion-MNIST files are present (Debian package dataset-fashion-mnist).
# Without root and without the data it stops at once and says how to get them.
set -euo pipefail
root=${GKL_FASHION_MNIST_ROOT:-/usr/share/datasets/fashion-mnist}
if [ -f "$root/train-images-idx3-ubyte.gz" ] || [ -f "$root/train-images-idx3-ubyte" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[data] installing Debian's dataset-fashion-mnist"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
  exit 0
fi
cat >&2 <<MSG
Fashion-MNIST is needed but was not found in $root, and installing it needs root.
Install it with:
    sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist
or put the four Fashion-MNIST idx .gz files in a folder and run again with
    GKL_FASHION_MNIST_ROOT=/that/folder
MSG
exit 1
