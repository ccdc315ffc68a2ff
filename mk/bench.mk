# Benchmarks: every backend and precision side by side in one run (bialign_benchmark --configs).
#   make bench   measures the machine's convolution peaks, exports and quantises the trained demo
#                weights (cached in $(BENCH_DIR)), then times the bare model, the Segmenter and the
#                node at each size; writes docs/benchmarks.md and docs/benchmarks_fps.png.
# BENCH_WEIGHTS=your.pt benchmarks your own checkpoint; the default (make bench-weights: the demo
# weights fine-tuned for full-resolution input) is trained on first use.
BENCH_WEIGHTS ?= .cache/demo_weights/bialign_dfnet2_synthetic_fullres.pt
BENCH_DIR ?= bench_out
BENCH_SIZES ?= 512x1024 1024x2048
BENCH_CONFIGS ?= all
BENCH_FLAGS ?= --iters 12 --warmup 3 --node --node-seconds 25

.PHONY: bench

bench: $(BENCH_WEIGHTS) | $(STAMP)
	$(PY) -m bialign_ros.cli.benchmark --weights $(BENCH_WEIGHTS) --configs $(BENCH_CONFIGS) \
		--sizes $(BENCH_SIZES) $(BENCH_FLAGS) --work-dir $(BENCH_DIR) --json $(BENCH_DIR)/benchmarks.json \
		--markdown docs/benchmarks.md --plot docs/benchmarks_fps.png
