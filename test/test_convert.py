"""bialign_convert: the authors' file layouts in, bialign_ros checkpoints out, mismatches named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bialign_ros.checkpoint import load_checkpoint
from bialign_ros.cli.convert import main as convert_main
from bialign_ros.convert import ConversionError, convert
from bialign_ros.model import build_model
from bialign_ros.segmenter import Segmenter


def _authors_file(path, arch="bialign_dfnet2", mutate=None, **extra):
    torch.manual_seed(1)
    model = build_model(arch, aux=True, edge=True)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    if mutate:
        mutate(state)
    torch.save({"state_dict": state, "epoch": 499, "mean_iu": 0.787, "command": "train.py", **extra}, path)
    return model


@pytest.mark.parametrize("arch", ["bialign_dfnet2", "bialign_dfnet1"])
def test_full_checkpoint_round_trip(tmp_path, arch):
    model = _authors_file(tmp_path / "best.pth", arch)
    meta = convert(tmp_path / "best.pth", tmp_path / "out.pt")
    assert meta.arch == arch
    assert meta.training["source_epoch"] == 499 and meta.training["source_mean_iu"] == pytest.approx(0.787)
    state, meta2, _ = load_checkpoint(tmp_path / "out.pt")
    ref = model.state_dict()
    assert state.keys() == ref.keys()
    assert all(torch.equal(state[k], ref[k]) for k in ref)
    # the converted file runs and gives the original model's labels
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    labels = Segmenter.from_checkpoint(tmp_path / "out.pt", device="cpu", precision="fp32",
                                       warmup=False).segment(image).labels
    x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - torch.tensor(meta2.mean).view(1, 3, 1, 1)) \
        / torch.tensor(meta2.std).view(1, 3, 1, 1)
    with torch.no_grad():
        ref_labels = model.eval()(x)[0].argmax(1)[0].numpy()
    assert (labels == ref_labels).mean() > 0.999


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    def mutate(state):
        del state["module.ppm.bottleneck.0.weight"]
        state["module.extra_head.weight"] = torch.zeros(3)
        state["module.sp.conv1.conv.weight"] = torch.zeros(1, 1, 1, 1)

    _authors_file(tmp_path / "bad.pth", mutate=mutate)
    with pytest.raises(ConversionError) as err:
        convert(tmp_path / "bad.pth", tmp_path / "out.pt")
    msg = str(err.value)
    assert "ppm.bottleneck.0.weight" in msg and "extra_head.weight" in msg and "sp.conv1.conv.weight" in msg
    assert not (tmp_path / "out.pt").exists()


def test_a_head_of_another_class_count_is_refused_since_the_file_names_no_classes(tmp_path):
    def five_classes(state):
        for key in ("module.conv_out.conv_out.weight", "module.conv_out.conv_out.bias"):
            state[key] = state[key][: 5 * 64]

    _authors_file(tmp_path / "five.pth", mutate=five_classes)
    with pytest.raises(ConversionError, match="predicts 5 classes, not the 19 Cityscapes classes"):
        convert(tmp_path / "five.pth", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_arch_mismatch(tmp_path):
    _authors_file(tmp_path / "v1.pth", "bialign_dfnet1")
    with pytest.raises(ConversionError, match="bialign_dfnet1 model, not bialign_dfnet2"):
        convert(tmp_path / "v1.pth", tmp_path / "out.pt", arch="bialign_dfnet2")


def test_backbone_file(tmp_path):
    torch.manual_seed(2)
    backbone = build_model("bialign_dfnet2").backbone.state_dict()
    backbone["fc.weight"] = torch.zeros(1000, 512)
    torch.save(backbone, tmp_path / "df2_imagenet.pth")
    meta = convert(tmp_path / "df2_imagenet.pth", tmp_path / "bb.pt")
    assert meta.training["backbone_only"] and meta.training["ignored_keys"] == ["fc.weight"]
    state, _, _ = load_checkpoint(tmp_path / "bb.pt")
    for k, v in backbone.items():
        if not k.startswith("fc."):
            assert torch.equal(state[f"backbone.{k}"], v)


def test_numpy_scalars_need_trust(tmp_path):
    _authors_file(tmp_path / "np.pth", mean_iu=np.float64(0.78))
    with pytest.raises(ConversionError, match="--trust-source"):
        convert(tmp_path / "np.pth", tmp_path / "out.pt")
    meta = convert(tmp_path / "np.pth", tmp_path / "out.pt", trust=True)
    assert meta.training["source_mean_iu"] == pytest.approx(0.78)


def test_cli(tmp_path, capsys):
    _authors_file(tmp_path / "best.pth")
    assert convert_main([str(tmp_path / "best.pth"), str(tmp_path / "out.pt"), "--arch", "bialign_dfnet2"]) == 0
    assert "full model" in capsys.readouterr().out
    assert convert_main([str(tmp_path / "missing.pth"), str(tmp_path / "x.pt")]) == 1
    assert "not found" in capsys.readouterr().err
