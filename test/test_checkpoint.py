"""The self-describing checkpoint format: round trip and clear errors."""

import pytest
import torch

from bialign_ros.checkpoint import CheckpointError, ModelMeta, load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3)}
    meta = ModelMeta(arch="bialign_dfnet1", training={"iterations": 10, "miou": 0.5})
    path = save_checkpoint(tmp_path / "sub" / "m.pt", state, meta, extra={"step": 4})
    loaded, meta2, extra = load_checkpoint(path)
    assert meta2 == meta
    assert meta2.num_classes == 19
    assert extra == {"step": 4}
    assert torch.equal(loaded["w"], state["w"])
    # readable with the safe loader alone
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "bialign_ros.checkpoint"


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_foreign_file_points_to_converter(tmp_path):
    path = tmp_path / "authors.pth"
    torch.save({"state_dict": {"module.w": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="bialign_convert"):
        load_checkpoint(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path)


def test_bad_meta(tmp_path):
    with pytest.raises(CheckpointError, match="class colours"):
        ModelMeta.from_dict({"class_names": ["a", "b"], "class_colors": [[0, 0, 0]]})
    with pytest.raises(CheckpointError, match="unknown"):
        ModelMeta.from_dict({"colour": 1})


@pytest.mark.parametrize(("fields", "message"), [
    ({"class_names": ("a", "a"), "class_colors": ((0, 0, 0),) * 2}, "distinct non-empty"),
    ({"class_names": ("a", ""), "class_colors": ((0, 0, 0),) * 2}, "distinct non-empty"),
    ({"class_names": (), "class_colors": ()}, "1 to 255 classes"),
    ({"class_names": ("a",), "class_colors": ((0, 0, 256),)}, "RGB triples in 0..255"),
    ({"class_names": ("a", "b"), "class_colors": ((0, 0, 0),) * 2, "ignore_index": 1}, "must be in 2..255"),
    ({"class_names": tuple(map(str, range(256))), "class_colors": ((0, 0, 0),) * 256}, "got 256"),
])
def test_class_table_of_any_size_up_to_mono8_is_checked(fields, message):
    with pytest.raises(CheckpointError, match=message):
        ModelMeta(**fields)
    assert ModelMeta(class_names=("a", "b"), class_colors=((1, 2, 3), (4, 5, 6)), ignore_index=2).num_classes == 2


def test_a_class_table_that_is_not_the_classifiers_is_named(tmp_path):
    from bialign_ros.backends.torch_runner import load_inference_model
    from bialign_ros.model import build_model

    model = build_model("bialign_dfnet2", num_classes=5, aux=False, edge=True)
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), ModelMeta())  # 19 names, 5 outputs
    with pytest.raises(CheckpointError, match="names 19 classes but its classifier has 5"):
        load_inference_model(path)
