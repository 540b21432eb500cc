#!/bin/bash
# The GPU checks on a lent GPU machine, in one command that fits its limits (docs/benchmarks.md, "GPU"): the
# CUDA-marked tests, benchmarks/gpu_check.py, then benchmarks/compare_realesrgan_gpu.py, each under a time limit of
# its own, every result written under $OUT as it comes (a check cut short keeps what it measured).
#
#   here:  make gpu-bundle
#   there: bash scripts/gpu_session.sh     (the device tool: carry [".gpu"], timeout_s 600)
#
# Nothing is fetched: the machine's python3 (with torch) gets .gpu/wheels installed into /tmp/site and .gpu/site
# on its path. Budgets (seconds) can be changed: TESTS_S, CHECK_S, COMPARE_S, COMPILE_S (0 leaves the compiled
# rows out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
LOG=$OUT/session.log
exec > >(tee -a "$LOG") 2>&1
TESTS_S=${TESTS_S:-150} CHECK_S=${CHECK_S:-90} COMPARE_S=${COMPARE_S:-200} COMPILE_S=${COMPILE_S:-100}
PYTHON=${PYTHON:-python3}
started=$(date +%s)
step() { echo "== $(( $(date +%s) - started )) s: $*"; }

[ -d .gpu/wheels ] || { echo "gpu-session: no .gpu/wheels; run make gpu-bundle here and carry .gpu" >&2; exit 2; }
step "installing .gpu/wheels into /tmp/site"
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .gpu/wheels/*.whl || exit 2
export PYTHONPATH=/tmp/site:$PWD/.gpu/site PYTHONUNBUFFERED=1 REMASTER_CACHE=/tmp/remaster-cache
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
"$PYTHON" - <<'EOF' || exit 2
import platform, time, torch, remaster, spandrel
from remaster.weights import get_manager
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"remaster {remaster.__version__}, spandrel {spandrel.__version__}")
print("GPU:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none: torch.cuda.is_available() is False")
for name in ("realesrgan-x4plus", "realesr-animevideov3"):  # converted from the packaged ncnn models
    started = time.perf_counter()
    print(f"weights {name}: {get_manager().ensure(name)} ({time.perf_counter() - started:.1f} s)")
EOF
"$PYTHON" -m remaster stages | head -5

step "CUDA-marked tests (${TESTS_S} s at most)"
mapfile -t files < <(grep -rlE "pytest\.mark\.cuda|NEEDS_GPU|needs_gpu" tests plugins/*/tests --include='test_*.py')
timeout "$TESTS_S" "$PYTHON" -m pytest -m cuda -p no:cacheprovider -q --junitxml="$OUT/tests.xml" "${files[@]}"
echo "tests: exit $?"

step "benchmarks/gpu_check.py (${CHECK_S} s at most)"
timeout "$CHECK_S" "$PYTHON" benchmarks/gpu_check.py --out "$OUT/bench.json"
echo "gpu_check: exit $?"

step "benchmarks/compare_realesrgan_gpu.py, eager (${COMPARE_S} s at most)"
timeout "$COMPARE_S" "$PYTHON" benchmarks/compare_realesrgan_gpu.py --no-compile --repeats 3 --out "$OUT/compare.json"
echo "compare: exit $?"

if [ "$COMPILE_S" -gt 0 ]; then
  step "compiled rows, realesr-animevideov3 1920x1080 (${COMPILE_S} s at most)"
  timeout "$COMPILE_S" "$PYTHON" benchmarks/compare_realesrgan_gpu.py --models realesr-animevideov3 \
    --sizes 1920x1080 --no-official --no-eager --repeats 3 --out "$OUT/compiled.json"
  echo "compiled: exit $?"
fi
step "done"
