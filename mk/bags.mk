# Rosbag replay evaluation (bialign_ros/bags).
#   make bag-demo   synthetic driving sequence -> bag (MCAP) -> bialign_bag_eval; open $(BAG_DEMO_DIR)/eval/report.html
#                   Uses WEIGHTS=... when given, else seeded untrained weights (the report then says so).
#   make chromium   installs Debian's chromium (needs root) for the report's headless screenshot test;
#                   `make test` never installs it: without it that test is skipped with the reason.
BAG_DEMO_DIR ?= bag_demo
BAG_DEMO_FRAMES ?= 30
BAG_DEMO_WEIGHTS = $(if $(WEIGHTS),$(WEIGHTS),$(BAG_DEMO_DIR)/untrained.pt)

.PHONY: bag-demo chromium

bag-demo: venv
	rm -rf $(BAG_DEMO_DIR)
	$(PY) -m bialign_ros.cli.synth --out $(BAG_DEMO_DIR)/frames --split val --num $(BAG_DEMO_FRAMES) \
		--height 256 --width 512 --sequence --quiet
	$(if $(WEIGHTS),,$(PY) -c "from bialign_ros.weights import untrained_checkpoint as u; u('$(BAG_DEMO_WEIGHTS)')")
	$(PY) -m bialign_ros.cli.make_bag --images $(BAG_DEMO_DIR)/frames/leftImg8bit/val \
		--labels $(BAG_DEMO_DIR)/frames/gtFine/val --out $(BAG_DEMO_DIR)/bag --no-progress
	$(PY) -m bialign_ros.cli.bag_eval --bag $(BAG_DEMO_DIR)/bag --image-topic /camera/image \
		--gt-topic /camera/labels --weights $(BAG_DEMO_WEIGHTS) --out-dir $(BAG_DEMO_DIR)/eval

chromium:
	apt-get install -y chromium
