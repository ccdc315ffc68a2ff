"""Benchmark library behind ``bialign_benchmark`` and ``bialign_node_benchmark``.

- :mod:`.configs`: the configurations (backend, precision, device) and the targets.
- :mod:`.frames`: the synthetic frames for timing, label agreement and int8 calibration.
- :mod:`.artifacts`: the cached ONNX exports and int8 quantisations a configuration runs.
- :mod:`.measure`: one configuration: bare model, Segmenter, label agreement, the node; the node ratio.
- :mod:`.node_harness`: the node in a child process fed by a camera publisher over DDS.
- :mod:`.node_bench`: one camera against several cameras in one node, next to the bare Segmenter.
- :mod:`.suite`: every configuration at every size, each in a process of its own (:mod:`.worker`).
- :mod:`.report`: the printed tables, the Markdown report and the FPS plot.
"""
