# Training package (training/): demo weights trained on the synthetic Cityscapes-format set.
#   make demo-weights  trains them once (a few minutes on a CPU) and caches them at $(DEMO_WEIGHTS)
#   make train-demo    retrains them from scratch (new data size or config) and replaces the cache
DEMO_WEIGHTS := .cache/demo_weights/bialign_dfnet2_synthetic.pt
DEMO_TRAIN_DIR := .cache/demo_training
DEMO_TRAIN_FLAGS := --out $(DEMO_WEIGHTS) --work-dir $(DEMO_TRAIN_DIR)
# Every core: the demo weights train alone (2 threads here: 0.9 s a step, against 1.4 s on one).
# On a machine busy with other work set DEMO_TRAIN_THREADS=1: two OpenMP threads stall badly (10x
# slower steps) when another process takes a core.
DEMO_TRAIN_THREADS ?= $(shell nproc)

.PHONY: demo-weights train-demo

demo-weights: $(DEMO_WEIGHTS)

# Order-only on the venv: reinstalling packages does not retrain the cached weights.
$(DEMO_WEIGHTS): | $(STAMP)
	OMP_NUM_THREADS=$(DEMO_TRAIN_THREADS) $(PY) -m training.demo_weights $(DEMO_TRAIN_FLAGS)

train-demo: venv
	OMP_NUM_THREADS=$(DEMO_TRAIN_THREADS) $(PY) -m training.demo_weights $(DEMO_TRAIN_FLAGS) --fresh

# Full-resolution weights for the benchmarks: the demo recipe trained longer (500 steps at lr 0.002,
# the base), then fine-tuned on 1024 x 2048 synthetic frames so that the network is at home at input
# scale 1 (512 x 1024 to 1024 x 2048). Reduced precision is judged by label agreement with fp32,
# which only means something where fp32 is confident. 18-32 minutes on 2 cores.
BENCH_BASE_WEIGHTS := .cache/demo_weights/bialign_dfnet2_synthetic_500.pt
BENCH_BASE_FLAGS := --out $(BENCH_BASE_WEIGHTS) --work-dir .cache/demo_training_500 \
	--set optim.iterations=500 --set optim.lr=0.002
FULLRES_WEIGHTS := .cache/demo_weights/bialign_dfnet2_synthetic_fullres.pt
FULLRES_TRAIN_FLAGS := --config training/configs/synthetic_fullres.yaml --out $(FULLRES_WEIGHTS) \
	--work-dir .cache/demo_training_fullres --height 1024 --width 2048 --input-scale 1.0 \
	--set model.init_weights=$(BENCH_BASE_WEIGHTS)

.PHONY: bench-weights

bench-weights: $(FULLRES_WEIGHTS)

$(BENCH_BASE_WEIGHTS): | $(STAMP)
	OMP_NUM_THREADS=$(DEMO_TRAIN_THREADS) $(PY) -m training.demo_weights $(BENCH_BASE_FLAGS)

$(FULLRES_WEIGHTS): | $(BENCH_BASE_WEIGHTS) $(STAMP)
	OMP_NUM_THREADS=$(DEMO_TRAIN_THREADS) $(PY) -m training.demo_weights $(FULLRES_TRAIN_FLAGS)
