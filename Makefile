# bialign_ros developer entry points. Every target sets up .venv itself (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQS := requirements/runtime-onnx.txt requirements/runtime.txt requirements/ros-kilted.txt requirements/dev.txt
STAMP := $(VENV)/.installed
WEIGHTS ?=
DEMO_DIR ?= demo_out

# Test steps of minutes (other installs, other ROS distributions) append themselves here from mk/*.mk.
LONG_TESTS :=

.PHONY: venv test pytest test-long lint demo demo-images bench bench-node clean

.DEFAULT_GOAL := test
include $(wildcard mk/*.mk)

venv: $(STAMP)

$(STAMP): $(REQS) setup.py setup.cfg package.xml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(foreach r,$(REQS),-r $(r))
	$(PY) -m pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $@

lint: venv
	$(VENV)/bin/ruff check .

test: lint pytest

pytest: venv
	$(PY) -m pytest -q --durations=25 -m "not long" test

# Tests of minutes each (the two trainings that must learn, torch.compile) and the LONG_TESTS steps
# (the ONNX-only install, ROS on Jazzy): kept out of make test for its time budget; CI runs
# make test-long after make test.
test-long: venv $(LONG_TESTS)
	$(PY) -m pytest -q -m long test

# The real node over ROS: simulated camera -> bialign node -> overlays + contact sheet. Without
# WEIGHTS it uses the demo weights trained on the synthetic set (trained once, then cached).
DEMO_RUN_WEIGHTS = $(or $(WEIGHTS),$(DEMO_WEIGHTS))
demo: venv $(if $(WEIGHTS),,$(DEMO_WEIGHTS))
	$(PY) -m bialign_ros.cli.ros_demo --weights "$(DEMO_RUN_WEIGHTS)" --out-dir $(DEMO_DIR)

# The same model on image files, without ROS.
demo-images: venv $(if $(WEIGHTS),,$(DEMO_WEIGHTS))
	$(PY) -m bialign_ros.demo --weights "$(DEMO_RUN_WEIGHTS)" --out-dir $(DEMO_DIR)/images

bench-node: venv
	$(PY) -m bialign_ros.cli.node_benchmark --width 2048 --height 1024 --rate 30 --duration 15 --input-scale 0.25


clean:
	rm -rf build install log $(DEMO_DIR) *.egg-info
