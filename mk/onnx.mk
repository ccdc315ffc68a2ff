# ONNX-only install: `make test-long` (and so CI) also checks that bialign_segment and bialign_node run an .onnx
# export in a venv without torch or onnx (requirements/runtime-onnx.txt + the Kilted wheels) and
# give the labels of the full environment. The test runs in .venv and drives the light venv's
# executables, which it finds through BIALIGN_ONNX_VENV (without it the test is skipped).
ONNX_VENV ?= .venv-onnx
ONNX_PY := $(ONNX_VENV)/bin/python
ONNX_REQS := requirements/runtime-onnx.txt requirements/ros-kilted.txt
ONNX_STAMP := $(ONNX_VENV)/.installed
# setuptools (for the editable install) at the pin of requirements/dev.txt.
ONNX_TOOLS = $(shell grep -E '^setuptools==' requirements/dev.txt)

.PHONY: venv-onnx test-onnx

venv-onnx: $(ONNX_STAMP)

$(ONNX_STAMP): $(ONNX_REQS) requirements/dev.txt setup.py setup.cfg package.xml
	test -x $(ONNX_PY) || $(PYTHON) -m venv $(ONNX_VENV)
	$(ONNX_PY) -m pip install -q --upgrade pip
	$(ONNX_PY) -m pip install -q $(foreach r,$(ONNX_REQS),-r $(r)) $(ONNX_TOOLS)
	$(ONNX_PY) -m pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $@

test-onnx: venv venv-onnx
	BIALIGN_ONNX_VENV=$(abspath $(ONNX_VENV)) $(PY) -m pytest -q test/test_onnx_runtime_install.py

LONG_TESTS += test-onnx
