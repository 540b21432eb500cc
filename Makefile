# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
PYTEST_ARGS ?=

.PHONY: demo test install bench gpu-check gpu-compare gpu-bundle clean test-krita test-gimp editors-env krita-env gimp-env install-krita install-gimp ffmpeg-env browser-env vulkan-env test-web

install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "remaster needs Python 3.10 or newer"' \
	  || { echo "error: $(PYTHON) is too old; install Python 3.11 (Debian: apt-get install python3 python3-venv)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) \
	  || { echo "error: cannot create $(VENV); on Debian run: apt-get install python3-venv"; exit 1; }

# The constraints file pins the torch pair; every plugin in plugins/ is installed
# editable so its entry points are live. Runtime packages whose declared
# dependencies are wrong for us (requirements-nodeps.txt: facexlib wants the GUI
# OpenCV) and the reference implementations the tests compare with
# (requirements-peers.txt) go in without their declared dependencies, which would
# bring the GUI OpenCV and a second torch; each file says why.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt requirements-nodeps.txt requirements-peers.txt \
          $(wildcard plugins/*/pyproject.toml)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt \
	  --editable '.[test,ray,video]' $(addprefix --editable ./,$(PLUGIN_DIRS))
	$(BIN)/python -m pip install --quiet --constraint constraints.txt \
	  --no-deps --requirement requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --constraint constraints.txt \
	  --no-deps --no-build-isolation --requirement requirements-peers.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/ruff check src plugins tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-only $(PYTEST_ARGS)

# On a machine with an NVIDIA GPU: the CUDA-marked tests, then a short benchmark (every precision the GPU runs,
# batched tiles, out-of-memory back-off). Results: gpu-check/tests.xml, gpu-check/bench.json and bench.md.
gpu-check: $(STAMP)
	@mkdir -p gpu-check
	$(BIN)/python -m pytest -m cuda -p no:cacheprovider --junitxml=gpu-check/tests.xml $(PYTEST_ARGS)
	$(BIN)/python benchmarks/gpu_check.py --out gpu-check/bench.json

# On a machine with an NVIDIA GPU: ours (fp16 autocast, fp16 weights, bf16; eager and --compile) against the
# official RealESRGANer(half=True), written into docs/benchmarks.md. Results also in gpu-check/compare.json and .md.
gpu-compare: $(STAMP)
	@mkdir -p gpu-check
	$(BIN)/python benchmarks/compare_realesrgan_gpu.py --out gpu-check/compare.json --docs docs/benchmarks.md

# For a lent GPU machine that reaches no registry (the device tool): .gpu/ holds the wheels and weights the checks
# need there; scripts/gpu_session.sh runs them there (docs/benchmarks.md, "GPU").
gpu-bundle: $(STAMP)
	@bash scripts/gpu_bundle.sh

# Editors for the plug-in tests (docs/editors.md). Neither step fails the build: without Krita or the GIMP 3
# chroot the editor tests skip and say why. The chroot (~700 MB, a few minutes once) lives outside git.
KRITA_PACKAGES := krita python3-pyqt5
GIMP_CHROOT ?= /var/cache/remaster/gimp3-trixie
export REMASTER_GIMP_CHROOT := $(GIMP_CHROOT)

editors-env: krita-env gimp-env

krita-env:
	@if command -v kritarunner >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	      $(KRITA_PACKAGES); } >/dev/null || echo "krita-env: apt-get could not install $(KRITA_PACKAGES)"; \
	else echo "krita-env: Krita is missing; run: sudo apt-get install $(KRITA_PACKAGES)"; fi

gimp-env:
	@scripts/gimp3-chroot.sh $(GIMP_CHROOT) || echo "gimp-env: no GIMP 3 chroot (see $(GIMP_CHROOT).failed)"

# The ffmpeg and ffprobe binaries, for benchmarks/video_throughput.py (Real-ESRGAN's video script pipes frames through
# them) and its test, which skips without them. remaster itself needs no binary: PyAV bundles FFmpeg. Never fails.
ffmpeg-env:
	@if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	      ffmpeg; } >/dev/null || echo "ffmpeg-env: apt-get could not install ffmpeg"; \
	else echo "ffmpeg-env: ffmpeg is missing; run: sudo apt-get install ffmpeg"; fi

# Debian's chromium and its driver, for the web page's tests (tests/web, docs/web.md), which skip without them. The
# tests give selenium the driver's path, so Selenium Manager never tries to download one. Never fails.
BROWSER_PACKAGES := chromium chromium-driver

browser-env:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	      $(BROWSER_PACKAGES); } >/dev/null || echo "browser-env: apt-get could not install $(BROWSER_PACKAGES)"; \
	else echo "browser-env: chromium is missing; run: sudo apt-get install $(BROWSER_PACKAGES)"; fi

# A Vulkan loader and Mesa's drivers, lavapipe among them (a Vulkan implementation on the CPU), so that the Vulkan
# tests (plugins/remaster-realesrgan/tests/test_vulkan.py) run here for correctness; they skip without. Never fails.
VULKAN_PACKAGES := libvulkan1 mesa-vulkan-drivers

vulkan-env:
	@if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && ls /usr/lib/*/libvulkan.so.1 /lib/*/libvulkan.so.1 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	      $(VULKAN_PACKAGES); } >/dev/null || echo "vulkan-env: apt-get could not install $(VULKAN_PACKAGES)"; \
	else echo "vulkan-env: lavapipe is missing; run: sudo apt-get install $(VULKAN_PACKAGES)"; fi

test-web: $(STAMP) browser-env
	$(BIN)/python -m pytest tests/web tests/test_server_web.py $(PYTEST_ARGS)

test-krita: $(STAMP) krita-env
	$(BIN)/python -m pytest tests/editors/test_krita.py $(PYTEST_ARGS)

test-gimp: $(STAMP) gimp-env
	$(BIN)/python -m pytest tests/editors/test_gimp.py $(PYTEST_ARGS)

install-krita:
	$(PYTHON) scripts/install_editor_plugin.py krita

install-gimp:
	$(PYTHON) scripts/install_editor_plugin.py gimp

clean:
	rm -rf $(VENV) out .pytest_cache gpu-check
