# Benchmarks: every backend and precision side by side in one run (bialign_benchmark --configs).
#   make bench   measures the machine's convolution peaks, exports and quantises the trained demo
#                weights (cached in $(BENCH_DIR)), then times the bare model, the Segmenter and the
#                node at each size (ONNX Runtime int8's node also with 2 frames in inference at once); writes $(BENCH_DOC).md (docs/benchmarks.md; beside the previous
#                run's figures, when $(BENCH_DIR) holds its record) and $(BENCH_DOC)_fps.png, and
#                (bench-outputs) $(BENCH_DOC)_outputs.md and $(BENCH_DOC)_outputs_torch.md.
# BENCH_WEIGHTS=your.pt benchmarks your own checkpoint; the default (make bench-weights: the demo
# weights fine-tuned for full-resolution input) is trained on first use.
BENCH_WEIGHTS ?= .cache/demo_weights/bialign_dfnet2_synthetic_fullres.pt
BENCH_DIR ?= bench_out
# Where the pages go: $(BENCH_DOC).md, $(BENCH_DOC)_fps.png, $(BENCH_DOC)_outputs.md and
# $(BENCH_DOC)_outputs_torch.md; the records are named after it ($(BENCH_DIR)/benchmarks_avx2.json,
# outputs/output_costs_avx2.json). Another machine's report beside this one:
# make bench BENCH_DOC=docs/benchmarks_avx2.
BENCH_DOC ?= docs/benchmarks
BENCH_RECORD := $(BENCH_DIR)/$(notdir $(BENCH_DOC))
OUTPUTS_RECORD = $(OUTPUTS_DIR)/output_costs$(patsubst benchmarks%,%,$(notdir $(BENCH_DOC)))
BENCH_SIZES ?= 512x1024 1024x2048
BENCH_CONFIGS ?= all
# The node with every output subscribed (the planner's view); a slow configuration times at least 3
# calls in 30 s instead of 12. On a CPU without bf16 instructions, all leaves the bf16 configurations
# out (seconds a frame there; listed under "Not measured here"): BENCH_CONFIGS="all torch-bf16" keeps one.
BENCH_FLAGS ?= --iters 12 --warmup 3 --time-budget 30 --node --node-seconds 25 --node-outputs all

OUTPUTS_DIR := $(BENCH_DIR)/outputs
OUTPUTS_INT8 := $(OUTPUTS_DIR)/$(basename $(notdir $(BENCH_WEIGHTS))).int8.onnx

.PHONY: bench bench-outputs

# What the planner outputs cost (confidence, free space, grid, points, the node with every output
# subscribed) at 512x1024, on ONNX Runtime int8 (docs/benchmarks_outputs.md) and on the .pt file itself,
# the torch path users get by default (docs/benchmarks_outputs_torch.md). The costs depend on the
# architecture, not on the weights' values.
bench-outputs: $(BENCH_WEIGHTS) | $(STAMP)
	rm -rf $(OUTPUTS_DIR)/calib
	$(PY) -m bialign_ros.cli.synth --out $(OUTPUTS_DIR)/calib --split train --num 8 --height 512 --width 1024 --quiet
	$(PY) -m bialign_ros.cli.quantize --weights $(BENCH_WEIGHTS) --calib $(OUTPUTS_DIR)/calib --out $(OUTPUTS_INT8) \
		--height 512 --width 1024
	$(PY) -m bialign_ros.cli.benchmark --output-costs --weights $(OUTPUTS_INT8) --height 512 --width 1024 \
		--node-seconds 20 --json $(OUTPUTS_RECORD).json --markdown $(BENCH_DOC)_outputs.md
	$(PY) -m bialign_ros.cli.benchmark --output-costs --weights $(BENCH_WEIGHTS) --height 512 --width 1024 \
		--node-seconds 20 --json $(OUTPUTS_RECORD)_torch.json --markdown $(BENCH_DOC)_outputs_torch.md

# The previous run's record, when there is one, is kept as $(BENCH_RECORD).previous.json and its
# figures are set beside the new ones in $(BENCH_DOC).md (how far they move between runs).
bench: bench-outputs $(BENCH_WEIGHTS) | $(STAMP)
	previous=; if [ -f $(BENCH_RECORD).json ]; then \
		cp $(BENCH_RECORD).json $(BENCH_RECORD).previous.json; \
		previous="--previous $(BENCH_RECORD).previous.json"; fi; \
	$(PY) -m bialign_ros.cli.benchmark --weights $(BENCH_WEIGHTS) --configs $(BENCH_CONFIGS) \
		--sizes $(BENCH_SIZES) $(BENCH_FLAGS) --work-dir $(BENCH_DIR) --json $(BENCH_RECORD).json \
		--markdown $(BENCH_DOC).md --plot $(BENCH_DOC)_fps.png $$previous
