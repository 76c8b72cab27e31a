# tfe-accel: every target does its own set-up on a fresh machine (local venv, install, build).
#   make run    secure training on the embedded default data (what the README opens with)
#   make test   the whole test suite except tests marked slow (make test-all for everything)
# Stacks: the reference stack (Python 3.11, TF 2.12) by default; another one with
#   make test PYTHON=python3.13 TF=2.21     (pins from constraints/tf$(TF).txt, venv .venv-<python>-tf<TF>)
#   make test-stacks                         the whole suite on TF 2.12, 2.16 and 2.21 (slow)
#   make smoke PYTHON=python3.13 TF=2.21     build + import + README examples + a secure step (CI)
PYTHON_BIN ?= python3.11
PYTHON     ?= $(PYTHON_BIN)
TF         ?= 2.12
CONSTRAINTS ?= constraints/tf$(TF).txt
REFERENCE  := $(if $(and $(filter 2.12,$(TF)),$(filter python3.11,$(notdir $(PYTHON)))),yes,)
# The reference stack is an editable install in .venv (CMake tree build/cmake-py311-tf2.12); any
# other stack is a regular install into its own venv (an editable one would put its op library
# into python/tfe_accel/, where the reference venv's lives).
VENV       ?= $(if $(REFERENCE),.venv,.venv-$(notdir $(PYTHON))-tf$(TF))
INSTALL    := $(if $(REFERENCE),-e .,.)
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
DEPS_STAMP := $(VENV)/.deps-stamp
BUILD_STAMP := $(VENV)/.build-stamp
SOURCES    := $(shell find cc python -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.py' -o -name '*.pth' 2>/dev/null) CMakeLists.txt setup.py pyproject.toml
PYTEST_ARGS ?=
STACKS     ?= python3.11:2.12 python3.11:2.16 python3.13:2.21
SMOKE_TESTS := tests/test_readme.py tests/test_compat.py tests/test_stack_smoke.py

.PHONY: all run test test-all test-slow test-sanitize test-stacks smoke build wheel bench clean info

all: build

# $(PYTHON) as given, or else pyenv's newest installed matching version (pyenv's shim for a
# version that is installed but not selected answers "command not found").
$(PY):
	@exe=$$($(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null) || \
	  exe=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(patsubst python%,%,$(notdir $(PYTHON))).*/bin/$(notdir $(PYTHON)) 2>/dev/null | sort -V | tail -n 1); \
	  [ -n "$$exe" ] && [ -x "$$exe" ] || { echo "make: $(PYTHON) not found: not on PATH and not under pyenv's versions/ (install it, or pass PYTHON=/path/to/python)" >&2; exit 127; }; \
	  echo "make: creating $(VENV) with $$exe"; "$$exe" -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=23"

$(DEPS_STAMP): requirements.txt $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -r requirements.txt -c $(CONSTRAINTS) || { echo "make: installing the TF $(TF) stack \
	for $(PYTHON) failed: TF $(TF)'s wheels may not exist for this Python (see $(CONSTRAINTS))" >&2; exit 1; }
	touch $@

$(CONSTRAINTS):
	@echo "make: no $@ for TF=$(TF). Stacks with constraints: $(patsubst constraints/tf%.txt,%,$(wildcard constraints/tf*.txt)) (docs/packaging.md, 'Supported stacks')" >&2; exit 2

# Reference stack: editable install (CMake builds the op library and _native into python/tfe_accel/).
# Other stacks: built against that venv's TF and installed into it, with the .pth that applies TF
# Encrypted's compatibility shims at interpreter start (`import tf_encrypted` first works too).
$(BUILD_STAMP): $(DEPS_STAMP) $(SOURCES)
	$(PIP) install --quiet --no-build-isolation --no-deps $(INSTALL)
	$(PY) -c "import sysconfig, shutil; shutil.copy('python/tfe_accel_compat.pth', sysconfig.get_paths()['purelib'])"
	touch $@

build: $(BUILD_STAMP)

run: build
	$(VENV)/bin/tfe-accel train

info: build
	$(VENV)/bin/tfe-accel info

test: build
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

test-slow: build
	$(PY) -m pytest tests -m "slow" $(PYTEST_ARGS)

test-all: build
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-sanitize: $(DEPS_STAMP)
	bash tests/sanitize/run.sh $(PY)

bench: build
	$(VENV)/bin/tfe-accel bench all

# The whole suite on each stack of STACKS (python:tf pairs), one after the other (slow: ~10 min each).
test-stacks:
	@set -e; for st in $(STACKS); do py=$${st%%:*}; tf=$${st##*:}; \
	  echo "== make test PYTHON=$$py TF=$$tf"; $(MAKE) --no-print-directory test PYTHON=$$py TF=$$tf PYTEST_ARGS="$(PYTEST_ARGS)"; done

# A fast check of one stack (CI runs it on the newest): build, import, the README examples, the
# compatibility shims, a secure matmul + sigmoid + one training step.
smoke: build
	$(PY) -m pytest $(SMOKE_TESTS) -m "not slow" $(PYTEST_ARGS)

wheel: $(DEPS_STAMP)
	bash .ci/build_wheel.sh $(PY)

clean:
	rm -rf build dist *.egg-info python/*.egg-info python/tfe_accel/*.so python/tfe_accel/_build_info.json $(BUILD_STAMP)
