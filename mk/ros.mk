# ROS 2 distributions: `make test-long` (and so CI) also runs the ROS tests (pytest marker `ros`) against
# the Jazzy wheels (rclpy 7.x, Fast DDS 2) in a second venv; .venv holds Kilted (rclpy 9.x, Fast DDS 3).
JAZZY_VENV ?= .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_REQS := requirements/runtime.txt requirements/runtime-onnx.txt requirements/ros-jazzy.txt
JAZZY_STAMP := $(JAZZY_VENV)/.installed
# pytest and setuptools (for the editable install) at the pins of requirements/dev.txt.
JAZZY_TOOLS = $(shell grep -E '^(pytest|setuptools)==' requirements/dev.txt)
# Test modules whose `ros` tests run on Jazzy too (the node's, and publishing through rcl without the
# GIL); the venv has no dev tools (rosbags, onnx, training's, ...), so modules that need those are left
# out (test_node_onnx.py exports and quantises with onnx; test_node_compile.py exports and trains).
JAZZY_TESTS := $(filter-out test/test_node_onnx.py test/test_node_compile.py,$(wildcard test/test_node*.py)) \
	test/test_raw_publish.py

.PHONY: venv-jazzy test-jazzy

venv-jazzy: $(JAZZY_STAMP)

$(JAZZY_STAMP): $(JAZZY_REQS) requirements/dev.txt setup.py setup.cfg package.xml
	test -x $(JAZZY_PY) || $(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_PY) -m pip install -q --upgrade pip
	$(JAZZY_PY) -m pip install -q $(foreach r,$(JAZZY_REQS),-r $(r)) $(JAZZY_TOOLS)
	$(JAZZY_PY) -m pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $@

test-jazzy: venv-jazzy
	$(JAZZY_PY) -m pytest -q -m ros $(JAZZY_TESTS)

LONG_TESTS += test-jazzy
