"""The typed training config: YAML files, CLI overrides, validation and the Cityscapes recipe."""

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from training.config import ConfigError, TrainConfig, config_from_dict, config_to_dict, load_config
from training.train import build_optimizer, config_from_args, get_args_parser

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def test_cityscapes_recipe_is_the_authors():
    cfg = load_config(CONFIGS / "cityscapes_bialign_dfnet2.yaml")
    assert cfg == TrainConfig()  # the dataclass defaults are the recipe too
    # The values of the authors' training script and loss.py.
    o, d, loss = cfg.optim, cfg.data, cfg.loss
    assert (o.lr, o.momentum, o.weight_decay, o.poly_power) == (0.01, 0.9, 1e-4, 0.9)
    assert (o.batch_size, o.batch_per_device) == (16, 2)
    assert o.iterations == 500 * (2975 // 16)
    assert (d.crop_size, d.scale_min, d.scale_max) == (1024, 0.5, 2.0)
    assert (d.color_jitter, d.blur_sigma, d.class_uniform_pct) == (0.25, (0.15, 1.3), 0.5)
    assert (loss.ohem_thresh, loss.ohem_min_kept, loss.edge_ohem_min_kept) == (0.7, 10000, 5000)
    assert (loss.aux_weight, loss.edge_weight, loss.edge_ohem_threshold) == (0.3, 25.0, 0.8)


@pytest.mark.parametrize("name", ["cityscapes_bialign_dfnet2.yaml", "synthetic_demo.yaml"])
def test_shipped_configs_load_and_round_trip(name):
    cfg = load_config(CONFIGS / name)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg)))) == cfg


def test_overrides_are_parsed_and_typed():
    cfg = load_config(None, ["optim.lr=0.02", "data.blur_sigma=[0.1, 2]", "model.sync_bn=false", "seed=7",
                             "optim.weight_decay=5e-4"])  # YAML 1.1 reads 5e-4 as a string
    assert cfg.optim.lr == 0.02 and cfg.optim.weight_decay == 5e-4
    assert cfg.data.blur_sigma == (0.1, 2.0)
    assert cfg.model.sync_bn is False
    assert cfg.seed == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]


def test_cli_shortcuts_override_the_file(tmp_path):
    args = get_args_parser().parse_args([
        "--config", str(CONFIGS / "cityscapes_bialign_dfnet2.yaml"),
        "--data-root", str(tmp_path / "city scapes"), "--iterations", "12",
        "--set", "optim.lr=0.5", "--set", "optim.iterations=99", "--device", "cpu",
    ])
    cfg = config_from_args(args)
    assert cfg.data.root == str(tmp_path / "city scapes")
    assert cfg.optim.iterations == 12  # the flag wins over --set
    assert (cfg.optim.lr, cfg.device) == (0.5, "cpu")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1"], r"unknown config keys \['optim.lrr'\]"),
        (["optim.lr=fast"], "optim.lr must be a number"),
        (["optim.iterations=1.5"], "optim.iterations must be an integer"),
        (["model.sync_bn=1"], "model.sync_bn must be true or false"),
        (["optim.amp=fp8"], "optim.amp must be one of"),
        (["optim.optimizer=adam"], "optim.optimizer must be one of"),
        (["optim.batch_size=15"], "multiple of optim.batch_per_device"),
        (["data.scale_min=3"], "data.scale_min/scale_max"),
        (["data.blur_prob=2"], r"data.blur_prob must be in \[0, 1\]"),
        (["data.crop_size=0"], "data.crop_size must be positive"),
        (["device=tpu"], "device must be one of"),
        (["lr"], "not of the form section.field=value"),
        (["optim=3"], "optim must be a mapping"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_optimizer_choice():
    model = torch.nn.Linear(2, 2)
    sgd = build_optimizer(model, load_config(None))
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["momentum"], sgd.defaults["weight_decay"]) == (0.9, 1e-4)
    assert not sgd.defaults["nesterov"]
    adamw = build_optimizer(model, load_config(None, ["optim.optimizer=adamw", "optim.lr=0.002"]))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["lr"] == 0.002


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
