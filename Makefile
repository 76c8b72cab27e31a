# tfe-accel: every target does its own set-up on a fresh machine (local venv, install, build).
#   make run    secure training on the embedded default data (what the README opens with)
#   make test   the whole test suite except tests marked slow (make test-all for everything)
PYTHON_BIN ?= python3.11
VENV       ?= .venv
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
DEPS_STAMP := $(VENV)/.deps-stamp
BUILD_STAMP := $(VENV)/.build-stamp
SOURCES    := $(shell find cc python -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.py' 2>/dev/null) CMakeLists.txt setup.py pyproject.toml
PYTEST_ARGS ?=

.PHONY: all run test test-all test-slow test-sanitize build wheel bench clean info

all: build

$(PY):
	$(PYTHON_BIN) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=23"

$(DEPS_STAMP): requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt -c requirements.txt
	touch $@

# Editable install: CMake builds the op library and _native into python/tfe_accel/.
$(BUILD_STAMP): $(DEPS_STAMP) $(SOURCES)
	$(PIP) install --quiet --no-build-isolation --no-deps -c requirements.txt -e .
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

wheel: $(DEPS_STAMP)
	bash .ci/build_wheel.sh $(PY)

clean:
	rm -rf build dist *.egg-info python/*.egg-info python/tfe_accel/*.so python/tfe_accel/_build_info.json $(BUILD_STAMP)
