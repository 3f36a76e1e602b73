#!/usr/bin/env bash
# Installs detectron2 v0.6 as pure Python into the given interpreter's environment.
#
# Detectron2 is not on PyPI under its own name. `pb1-detectron2==0.6` is an exact repackaging
# of upstream v0.6, but its source archive lacks the C++ sources, so the normal build fails.
# Everything used here runs without them (nms and roi_align come from torchvision), so the
# package is built without extension modules, with an empty `detectron2._C` (v0.6 imports it
# at start-up), and with the model-zoo configs moved where setup.py installs them from.
# A detectron2 >= 0.6 that is already importable is left alone.
#
# Usage: scripts/install_detectron2.sh [PYTHON]
set -euo pipefail
py=${1:-python3}
if "$py" - <<'PY' 2>/dev/null
import detectron2, sys
from packaging.version import Version
sys.exit(0 if Version(detectron2.__version__.split('+')[0]) >= Version('0.6') else 1)
PY
then
  version=$("$py" -c 'import detectron2; print(detectron2.__version__)')
  echo "[detectron2] already installed: $version"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }
# Older Pillow and setuptools: v0.6 uses names that later releases removed.
pip install 'Pillow<10' 'setuptools<81' wheel fvcore iopath pycocotools omegaconf hydra-core \
  'black' tabulate termcolor yacs cloudpickle matplotlib tqdm tensorboard
# setup.py imports torch to prepare metadata, hence no build isolation.
pip download --no-deps --no-binary :all: --no-build-isolation -d "$work" 'pb1-detectron2==0.6'
tar -xzf "$work"/pb1-detectron2-0.6.tar.gz -C "$work"
src="$work/pb1-detectron2-0.6"
if [ -d "$src/detectron2/model_zoo/configs" ] && [ ! -d "$src/configs" ]; then
  mv "$src/detectron2/model_zoo/configs" "$src/configs"
fi
# detectron2 imports _C at start-up, and default_setup asks it how it was built.
cat > "$src/detectron2/_C.py" <<'PY'
"""Stand-in for detectron2's compiled extension: this build has no C++ operators."""


def get_compiler_version():
    return 'none (built without C++ operators)'


def get_cuda_version():
    return 'none (built without C++ operators)'


def has_cuda():
    return False
PY
# Build without the C++ extension: there are no sources for it in this archive.
"$py" - "$src/setup.py" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text, n = re.subn(r'ext_modules=get_extensions\(\)', 'ext_modules=[]', text)
assert n == 1, 'unexpected detectron2 setup.py layout'
open(path, 'w').write(text)
PY
pip install --no-build-isolation --no-deps "$src"
"$py" - <<'PY'
import detectron2
from detectron2 import model_zoo

model_zoo.get_config_file('COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml')
print('[detectron2] installed', detectron2.__version__)
PY
