#!/usr/bin/env bash
# Creates (or updates) the project's virtual environment in .venv with every host framework.
# Idempotent: a finished step is skipped on the next run, so `make demo` and `make test`
# can both call it.
#
# Usage: scripts/setup_env.sh [--no-detectron2]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$here/.venv
python=${PYTHON:-python3}
with_d2=1
for arg in "$@"; do
  case "$arg" in
    --no-detectron2) with_d2=0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

if [ ! -x "$venv/bin/python" ]; then
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$version" != 3.11 ]; then
    echo "[setup] warning: $python is Python $version; the pins were measured on 3.11" >&2
  fi
  if ! "$python" -m venv --help >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
      echo "[setup] $python has no venv module: install python3-venv" >&2
      exit 1
    fi
  fi
  echo "[setup] creating $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }

stamp="$venv/.gkl-setup-$(cat "$here/setup.py" "$here/scripts/setup_env.sh" \
  "$here/scripts/install_detectron2.sh" | sha1sum | cut -c1-12)-$with_d2"
if [ -f "$stamp" ]; then
  exit 0
fi

echo "[setup] installing torch and torchvision (pinned; see setup.py)"
# torchvision from PyPI only imports next to the torch release it was built for.
pip install 'torch==2.14.1' 'torchvision==0.29.1'
echo "[setup] installing gkl-plugins with the OpenMMLab hosts and test tools"
pip install -e "$here[mmrazor,mmpretrain,test,demo]"
# torchattacks pins an old `requests` and asks for torchvision in its metadata although it
# only imports torch, numpy and scipy; installing it without dependencies keeps the pins.
pip install --no-deps 'torchattacks==3.5.1'
if [ "$with_d2" = 1 ]; then
  "$here/scripts/install_detectron2.sh" "$py"
fi
rm -f "$venv"/.gkl-setup-*
touch "$stamp"
echo "[setup] environment ready: $venv"
