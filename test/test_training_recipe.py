"""The two Cityscapes configs: the authors' training as their code runs it, and the improved one,
which departs from it in exactly the switches training/README.md lists."""

from pathlib import Path

import pytest
import torch
from torch import nn

from bialign_ros.model import build_model
from bialign_ros.model.dfnet import BasicBlock
from training.config import TrainConfig, config_to_dict, load_config
from training.train import autocast_dtype, convert_sync_batchnorm

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
AUTHORS = CONFIGS / "cityscapes_bialign_dfnet2.yaml"
IMPROVED = CONFIGS / "cityscapes_bialign_dfnet2_improved.yaml"


def _flat(cfg: TrainConfig) -> dict:
    flat = {}
    for key, value in config_to_dict(cfg).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def test_the_authors_config_is_the_defaults():
    """Every field of the recipe file is the built-in default: the quirks are on unless switched off."""
    authors = load_config(AUTHORS)
    assert _flat(authors) == _flat(TrainConfig())
    assert authors.loss.edge_bce_on_probabilities is True
    assert authors.optim.amp == "off"
    assert authors.model.sync_bn and not authors.model.sync_bn_in_blocks
    assert authors.data.class_uniform_all_tiles is False
    assert (authors.eval.flip, authors.eval.scales, authors.eval.average) == (True, (1.0,), "logits")


def test_the_improved_config_changes_only_the_named_switches():
    authors, improved = _flat(load_config(AUTHORS)), _flat(load_config(IMPROVED))
    changed = {k: (authors[k], improved[k]) for k in authors if authors[k] != improved[k]}
    assert changed == {
        "loss.edge_bce_on_probabilities": (True, False),
        "optim.amp": ("off", "auto"),
        "model.sync_bn_in_blocks": (False, True),
        "data.class_uniform_all_tiles": (False, True),
        "out_dir": ("runs/cityscapes_bialign_dfnet2", "runs/cityscapes_bialign_dfnet2_improved"),
    }


@pytest.mark.parametrize("in_blocks", [False, True])
def test_sync_batchnorm_scope(in_blocks):
    """The authors' residual blocks build bn1/bn2 as plain BatchNorm even under --syncbn."""
    model = convert_sync_batchnorm(build_model(aux=True, edge=True), in_blocks)
    block_norms = {f"{name}.{bn}" for name, m in model.named_modules() if isinstance(m, BasicBlock)
                   for bn in ("bn1", "bn2")}
    norms = {name: type(m) for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert len(block_norms) == 2 * sum(isinstance(m, BasicBlock) for m in model.modules()) > 0
    for name, kind in norms.items():
        local = name in block_norms and not in_blocks
        assert kind is (nn.BatchNorm2d if local else nn.SyncBatchNorm), name
    assert "backbone.stage1.1" in norms and "ppm.stages.0.2" not in block_norms
    assert sum(kind is nn.SyncBatchNorm for kind in norms.values()) > len(norms) // 4


def test_amp_modes_on_the_cpu():
    cpu = torch.device("cpu")
    assert autocast_dtype("off", cpu) is None
    assert autocast_dtype("auto", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_amp_auto_takes_bf16_only_where_the_gpu_computes_it_natively():
    major = torch.cuda.get_device_properties(0).major
    expected = torch.bfloat16 if major >= 8 else torch.float16
    assert autocast_dtype("auto", torch.device("cuda")) is expected
