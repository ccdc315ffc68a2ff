"""ImageNet backbone weights initialise the training model; bad files are named."""

from pathlib import Path

import numpy as np
import pytest
import torch

from bialign_ros.checkpoint import ModelMeta, save_checkpoint
from bialign_ros.class_table import ClassTable
from bialign_ros.classes import CITYSCAPES_NAMES
from bialign_ros.model import build_model
from bialign_ros.model.bialign import CLASS_LAYERS
from training.backbone import read_backbone_file
from training.config import ConfigError, load_config
from training.distributed import DistContext
from training.train import build_training_model, config_from_args, get_args_parser, train
from training.train import main as train_main

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def _layouts(source: dict) -> dict[str, object]:
    """One backbone in the layouts ImageNet DFNet files come in."""
    fc = {"fc.weight": torch.zeros(3, 2), "fc.bias": torch.zeros(3)}
    return {
        "flat": source | fc,
        "state_dict": {"state_dict": source | fc, "epoch": 90},
        "model": {"model": source | fc, "epoch": 90},
        "module": {"state_dict": {f"module.{k}": v for k, v in (source | fc).items()}},
        "nested": {"model": {"state_dict": source}},
        "backbone prefix": {f"backbone.{k}": v for k, v in source.items()} | {"head.weight": torch.zeros(2)},
    }


@pytest.mark.parametrize("layout", ["flat", "state_dict", "model", "module", "nested", "backbone prefix"])
def test_backbone_file_layouts_initialise_the_backbone(tmp_path, layout, capsys):
    torch.manual_seed(1)
    source = build_model().backbone.state_dict()
    path = tmp_path / "df2_imagenet.pth"
    torch.save(_layouts(source)[layout], path)
    assert set(read_backbone_file(path)) >= set(source)

    cfg = load_config(None, [f"model.backbone_weights={path}"])
    model, bare = build_training_model(cfg, DistContext())
    assert model is bare
    loaded = bare.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.items())
    log = capsys.readouterr().out
    groups = ", ".join(sorted({k.split(".", 1)[0] for k in source}))
    assert f"backbone weights: {len(source)} tensors from {path} ({groups})" in log
    assert groups.startswith("stage1, stage2_1, stage2_2, stage3_1")
    if layout in ("flat", "state_dict", "model", "module"):
        assert "ignored 2 other keys (fc.bias, fc.weight)" in log


def test_numpy_scalars_need_trust_source(tmp_path):
    """Files saved with numpy training metadata (accuracy, epoch) need full unpickling."""
    source = build_model().backbone.state_dict()
    path = tmp_path / "df2_imagenet.pth"
    torch.save({"state_dict": source, "best_acc1": np.float64(0.71), "epoch": np.int64(120)}, path)
    with pytest.raises(ValueError, match="pass --trust-source"):
        read_backbone_file(path)
    assert set(read_backbone_file(path, trust_source=True)) == set(source)
    args = get_args_parser().parse_args(["--backbone-weights", str(path), "--trust-source"])
    cfg = config_from_args(args)
    assert cfg.model.backbone_trust_source and cfg.model.backbone_weights == str(path)
    build_training_model(cfg, DistContext())


def test_starting_without_a_backbone_is_an_error_unless_asked_for(tmp_path):
    from bialign_ros.synthetic import write_cityscapes

    root = tmp_path / "data"
    write_cityscapes(root, split="train", num_images=4, height=64, width=128, seed=0, progress=False)
    common = ["--data-root", str(root), "--out-dir", str(tmp_path / "run"), "--device", "cpu",
              "--iterations", "1", "--no-progress", "--set", "optim.batch_size=2",
              "--set", "optim.batch_per_device=2", "--set", "data.crop_size=64", "--set", "data.workers=0",
              "--set", "val_every=0", "--set", "ckpt_every=0", "--set", "log_every=0"]
    for config in ("cityscapes_bialign_dfnet2.yaml", "cityscapes_bialign_dfnet2_improved.yaml"):
        with pytest.raises(ConfigError, match=r"df2_imagenet\.pth.*--set model\.backbone_weights=none"):
            train(config_from_args(get_args_parser().parse_args(["--config", str(CONFIGS / config), *common])),
                  DistContext(), progress=False)
    with pytest.raises(ConfigError, match=r"df1_imagenet\.pth"):
        train(config_from_args(get_args_parser().parse_args([*common, "--set", "model.arch=bialign_dfnet1"])),
              DistContext(), progress=False)
    assert train_main([*common, "--set", "model.backbone_weights=none"]) == 0
    assert (tmp_path / "run" / "final.pt").is_file()


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


@pytest.mark.parametrize("classes", [("road", "grass", "vehicle", "person", "other"), CITYSCAPES_NAMES[::-1]])
def test_init_weights_of_other_classes_reinitialise_only_the_class_layers(tmp_path, classes, capsys):
    """Fine-tuning a Cityscapes checkpoint on another class table (another count, or the same
    count with other classes) keeps everything but the class layers, and says which those are."""
    torch.manual_seed(2)
    source = build_model(aux=True, edge=True).state_dict()
    path = tmp_path / "cityscapes.pt"
    save_checkpoint(path, source, ModelMeta(arch="bialign_dfnet2"))
    table = ClassTable(classes, ((0, 0, 0),) * len(classes), np.zeros(256, np.uint8), np.ones(256, bool))
    torch.manual_seed(5)
    fresh = build_model(num_classes=len(classes), aux=True, edge=True).state_dict()
    torch.manual_seed(5)  # the same fresh initialisation inside build_training_model
    _, bare = build_training_model(load_config(None, [f"model.init_weights={path}"]), DistContext(), table=table)
    loaded = bare.state_dict()
    class_keys = sorted(k for k in loaded if k.rsplit(".", 1)[0] in CLASS_LAYERS)
    assert class_keys == [f"{layer}.{p}" for layer in sorted(CLASS_LAYERS) for p in ("bias", "weight")]
    assert loaded["conv_out.conv_out.weight"].shape[0] == 64 * len(classes)
    for key, value in loaded.items():
        expected = fresh[key] if key in class_keys else source[key]
        assert torch.equal(value, expected), key
    log = capsys.readouterr().out
    assert (f"init weights: {len(source) - 6} tensors from {path}; its 19 classes are not the data's "
            f"{len(classes)}, so the class layers start afresh: {', '.join(class_keys)}") in log
