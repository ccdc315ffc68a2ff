"""ImageNet backbone weights initialise the training model; bad files are named."""

import pytest
import torch

from bialign_ros.checkpoint import ModelMeta, save_checkpoint
from bialign_ros.model import build_model
from training.config import load_config
from training.distributed import DistContext
from training.train import build_training_model, read_backbone_file


def test_backbone_file_with_prefix_and_classifier_initialises_the_backbone(tmp_path):
    torch.manual_seed(1)
    source = build_model().backbone.state_dict()
    # As a DataParallel ImageNet classifier would save it: prefixed keys and a classifier head.
    state = {f"module.{k}": v for k, v in source.items()} | {"module.fc.weight": torch.zeros(3, 2)}
    wrapped = {"state_dict": state}
    path = tmp_path / "df2_imagenet.pth"
    torch.save(wrapped, path)
    assert set(read_backbone_file(path)) == set(source) | {"fc.weight"}

    cfg = load_config(None, [f"model.backbone_weights={path}"])
    model, bare = build_training_model(cfg, DistContext())
    assert model is bare
    loaded = bare.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.items())


def test_bad_backbone_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="backbone weights file not found"):
        read_backbone_file(tmp_path / "missing.pth")
    torch.save({"stage1.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    cfg = load_config(None, [f"model.backbone_weights={tmp_path / 'wrong.pth'}"])
    with pytest.raises(ValueError, match="backbone weights do not fit"):
        build_training_model(cfg, DistContext())


def test_init_weights_fine_tune_from_a_whole_checkpoint(tmp_path):
    torch.manual_seed(2)
    source = build_model(aux=True, edge=True)
    path = tmp_path / "start.pt"
    save_checkpoint(path, source.state_dict(), ModelMeta(arch="bialign_dfnet2"))
    cfg = load_config(None, [f"model.init_weights={path}", "model.backbone_weights=ignored.pth"])
    _, bare = build_training_model(cfg, DistContext())
    loaded = bare.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())

    save_checkpoint(tmp_path / "dfnet1.pt", build_model("bialign_dfnet1").state_dict(),
                    ModelMeta(arch="bialign_dfnet1"))
    cfg = load_config(None, [f"model.init_weights={tmp_path / 'dfnet1.pt'}"])
    with pytest.raises(ValueError, match="holds bialign_dfnet1, the config trains bialign_dfnet2"):
        build_training_model(cfg, DistContext())
