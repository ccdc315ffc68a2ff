"""python -m training.evaluate: metrics, benchmark-named label-ID PNGs, plots, and agreement
with the official cityscapesscripts evaluator."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bialign_ros.checkpoint import ModelMeta, save_checkpoint
from bialign_ros.classes import CITYSCAPES_CLASSES, CITYSCAPES_NAMES
from bialign_ros.model import build_model
from training import evaluate
from training.config import EvalConfig, load_config
from training.distributed import DistContext
from training.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A synthetic set and a checkpoint trained on it for a few steps."""
    from bialign_ros.synthetic import write_cityscapes

    root = tmp_path_factory.mktemp("synthetic_eval")
    write_cityscapes(root, split="train", num_images=6, height=64, width=128, seed=2, progress=False)
    write_cityscapes(root, split="val", num_images=3, height=64, width=128, seed=2, progress=False)
    cfg = load_config(None, [
        f"data.root={root}", f"out_dir={root / 'run'}", "device=cpu", "data.crop_size=64", "data.workers=0",
        "model.backbone_weights=none",
        "data.class_uniform_tile=64", "optim.iterations=12", "optim.batch_size=4", "optim.lr=0.05",
        "loss.ohem_min_kept=1000", "val_every=0", "ckpt_every=0",
    ])
    train(cfg, DistContext(), progress=False)
    return root, root / "run" / "final.pt"


def _official(pred_dir: Path, gt_files: list[str]) -> dict:
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    args = ev.CArgs()
    for key, value in vars(ev.args).items():
        setattr(args, key, value)
    args.predictionPath, args.predictionWalk = str(pred_dir), None
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    preds = [ev.getPrediction(args, gt) for gt in gt_files]
    return ev.evaluateImgLists(preds, gt_files, args)


def test_evaluate_agrees_with_official_evaluator(trained, tmp_path):
    root, weights = trained
    out = tmp_path / "eval"
    rc = evaluate.main(["--weights", str(weights), "--data-root", str(root), "--split", "val",
                        "--device", "cpu", "--out-dir", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 3 and metrics["split"] == "val"
    assert list(metrics["per_class_iou"]) == list(CITYSCAPES_NAMES)
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["num_pixels"] > 0
    for name in ("per_class_iou.png", "confusion_matrix.png"):
        assert cv2.imread(str(out / name)) is not None

    gts = sorted(str(p) for p in (root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    names = [Path(g).name.replace("_gtFine_labelIds.png", "") for g in gts]
    assert sorted(p.name for p in (out / "pred").iterdir()) == [f"{n}_leftImg8bit.png" for n in names]
    label_ids = {c.label_id for c in CITYSCAPES_CLASSES}
    pred = cv2.imread(str(out / "pred" / f"{names[0]}_leftImg8bit.png"), cv2.IMREAD_UNCHANGED)
    assert pred.shape == (64, 128) and pred.dtype == np.uint8 and set(np.unique(pred)) <= label_ids

    official = _official(out / "pred", gts)
    assert metrics["miou"] == pytest.approx(official["averageScoreClasses"], abs=1e-12)
    for name, iou in metrics["per_class_iou"].items():
        ref = official["classScores"][name]
        assert (iou is None and np.isnan(ref)) or iou == pytest.approx(ref, abs=1e-12), name
    assert sum(v is not None for v in metrics["per_class_iou"].values()) >= 5


def test_multiscale_flip_evaluation(trained, tmp_path):
    root, weights = trained
    out = tmp_path / "ms"
    rc = evaluate.main(["--weights", str(weights), "--data-root", str(root), "--device", "cpu", "--scales",
                        "0.75", "1.25", "--flip", "--max-images", "2", "--no-pred", "--out-dir", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["num_images"], metrics["scales"], metrics["flip"]) == (2, [0.75, 1.25], True)
    assert 0 < metrics["num_pixels"] <= 2 * 64 * 128
    assert 0.0 <= metrics["miou"] <= 1.0
    assert not any((out / "pred").iterdir())


def test_predict_scores_averages_views_as_the_protocol_says():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)  # 3x3: mirroring does not commute with it

    def forward(x):
        return conv(x)

    x = torch.randn(1, 3, 16, 24)
    with torch.no_grad():
        single = evaluate.predict_scores(forward, x, EvalConfig(flip=False))
        authors = evaluate.predict_scores(forward, x)  # flip-averaged logits
        probs = evaluate.predict_scores(forward, x, EvalConfig(flip=True, average="probabilities"))
        torch.testing.assert_close(single, conv(x))
        torch.testing.assert_close(authors, (conv(x) + conv(x.flip(-1)).flip(-1)) / 2)
        torch.testing.assert_close(probs, (conv(x).softmax(1) + conv(x.flip(-1)).flip(-1).softmax(1)) / 2)


class PixelRamps(torch.nn.Module):
    """Three class scores whose value at every pixel of any input size is known: 0.2 x the column
    index, 0.3 x the row index, and 0 (in the input's own pixel units, so they depend on the scale
    it ran at and on the mirroring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cols = 0.2 * torch.arange(w, dtype=torch.float32).expand(n, 1, h, w)
        rows = 0.3 * torch.arange(h, dtype=torch.float32)[:, None].expand(n, 1, h, w)
        return torch.cat([cols, rows, torch.zeros_like(cols)], dim=1)


def _expected_scores(h: int, w: int, scales: tuple[float, ...], flip: bool, average: str) -> np.ndarray:
    """What :class:`PixelRamps` gives under a protocol, by hand: at scale s it runs on an
    h_s x w_s input, and bilinear resizing with aligned corners carries a ramp over exactly, so
    output column k holds 0.2 (w_s - 1) k / (w - 1); mirrored, 0.2 (w_s - 1) (1 - k / (w - 1))."""
    u = np.broadcast_to(np.arange(w) / (w - 1), (h, w))
    v = np.broadcast_to(np.arange(h)[:, None] / (h - 1), (h, w))
    views = []
    for s in scales:
        hs, ws = max(8, round(h * s)), max(8, round(w * s))
        for col in ([u, 1 - u] if flip else [u]):
            logits = np.stack([0.2 * (ws - 1) * col, 0.3 * (hs - 1) * v, np.zeros((h, w))])
            if average == "probabilities":
                logits = np.exp(logits) / np.exp(logits).sum(0)
            views.append(logits)
    return np.mean(views, axis=0)[None]


@pytest.mark.parametrize("average", ["logits", "probabilities"])
@pytest.mark.parametrize("flip", [False, True])
def test_predict_scores_combines_scales_and_mirrors_as_computed_by_hand(flip, average):
    x = torch.zeros(1, 3, 16, 24)
    protocol = EvalConfig(flip=flip, scales=(0.5, 1.0, 1.75), average=average)  # mean scale not 1
    with torch.no_grad():
        scores = evaluate.predict_scores(PixelRamps(), x, protocol)
    np.testing.assert_allclose(scores.numpy(), _expected_scores(16, 24, protocol.scales, flip, average),
                               atol=1e-5)


def test_protocol_comes_from_the_checkpoint_then_the_flags():
    parser = evaluate.get_args_parser()

    def protocol(training, *flags):
        return evaluate.eval_protocol(training, parser.parse_args(["--weights", "w", "--data-root", "r",
                                                                  "--out-dir", "o", *flags]))

    assert protocol({}) == EvalConfig(flip=True, scales=(1.0,), average="logits")  # the authors' script
    recorded = {"config": {"eval": {"flip": False, "scales": [1.0], "average": "probabilities"}}}
    assert protocol(recorded) == EvalConfig(flip=False, average="probabilities")
    assert protocol(recorded, "--flip", "--scales", "0.75", "1.25") == EvalConfig(
        flip=True, scales=(0.75, 1.25), average="probabilities")
    assert protocol({}, "--no-flip", "--average", "probabilities").flip is False
    with pytest.raises(SystemExit, match="--scales must be positive"):
        protocol({}, "--scales", "0")


def test_a_checkpoint_of_other_classes_is_refused(trained, tmp_path):
    root, _ = trained
    meta = ModelMeta(class_names=("a", "b", "c"), class_colors=((0, 0, 0),) * 3)
    weights = save_checkpoint(tmp_path / "three.pt", build_model(num_classes=3).state_dict(), meta)
    with pytest.raises(SystemExit, match=r"predicts 3 classes a, b, c, but the data set .* labelled with 19: road"):
        evaluate.main(["--weights", str(weights), "--data-root", str(root), "--device", "cpu",
                       "--out-dir", str(tmp_path / "x")])
