"""Each term of the edge-guided hard pixel mining loss against values computed by hand."""

import math
from dataclasses import replace

import pytest
import torch

from training.config import LossConfig
from training.losses import LOSS_TERMS, balanced_edge_bce, edge_guided_loss, ohem_cross_entropy


def _ce(p_true: float) -> float:
    return -math.log(p_true)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# Two classes, four pixels in a row: p(true class) = 0.881 (easy), 0.5, 0.269 (hard); last ignored.
LOGITS = torch.tensor([[[[2.0, 0.0, 0.0, 5.0]], [[0.0, 0.0, 1.0, 0.0]]]], requires_grad=True)
TARGET = torch.tensor([[[0, 0, 0, 255]]])
P = [math.exp(2) / (math.exp(2) + 1), 0.5, 1 / (1 + math.e)]


def test_ohem_keeps_pixels_below_threshold():
    loss = ohem_cross_entropy(LOGITS, TARGET, thresh=0.7, min_kept=1)
    assert loss.item() == pytest.approx((_ce(P[1]) + _ce(P[2])) / 2, rel=1e-6)


def test_ohem_min_kept_raises_threshold():
    # The 3rd smallest probability (0.881) exceeds 0.7, so it becomes the threshold.
    loss = ohem_cross_entropy(LOGITS, TARGET, thresh=0.7, min_kept=3)
    assert loss.item() == pytest.approx(sum(_ce(p) for p in P) / 3, rel=1e-6)


def test_ohem_with_fewer_valid_pixels_than_min_kept_keeps_all_valid():
    loss = ohem_cross_entropy(LOGITS, TARGET, thresh=0.1, min_kept=10000)
    assert loss.item() == pytest.approx(sum(_ce(p) for p in P) / 3, rel=1e-6)


@pytest.mark.parametrize("target", [TARGET, torch.full_like(TARGET, 255)], ids=["none-hard", "all-ignored"])
def test_ohem_without_kept_pixels_is_zero_with_graph(target):
    loss = ohem_cross_entropy(LOGITS, target, thresh=0.2, min_kept=0)
    assert loss.item() == 0.0
    loss.backward()
    assert LOGITS.grad is not None and torch.count_nonzero(LOGITS.grad) == 0
    LOGITS.grad = None


EDGE_X = [2.0, -1.0, 0.0, 0.5]
EDGE_T = [1.0, 0.0, 0.0, 2.0]  # the last pixel is neither 0 nor 1: ignored


def _bce_by_hand(xs: list[float]) -> float:
    # one positive, two negatives: positives weigh 2/3, negatives 1/3; mean over all 4 pixels
    terms = [2 / 3 * _softplus(-xs[0]), 1 / 3 * _softplus(xs[1]), 1 / 3 * _softplus(xs[2])]
    return sum(terms) / 4


def test_balanced_bce_on_logits():
    x = torch.tensor(EDGE_X).view(1, 1, 2, 2)
    t = torch.tensor(EDGE_T).view(1, 1, 2, 2)
    assert balanced_edge_bce(x, t).item() == pytest.approx(_bce_by_hand(EDGE_X), rel=1e-6)


def test_balanced_bce_double_sigmoid_as_the_authors():
    x = torch.tensor(EDGE_X).view(1, 1, 2, 2)
    t = torch.tensor(EDGE_T).view(1, 1, 2, 2)
    loss = balanced_edge_bce(x, t, on_probabilities=True)
    assert loss.item() == pytest.approx(_bce_by_hand([_sigmoid(v) for v in EDGE_X]), rel=1e-6)
    # The double sigmoid bounds the loss of a confidently wrong edge pixel below log(1 + e^-0) ...
    wrong = torch.tensor([-20.0, 20.0]).view(1, 1, 1, 2)
    target = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    assert balanced_edge_bce(wrong, target, on_probabilities=True).item() < math.log(2)
    # ... while the BCE on logits grows with the error, as a calibrated loss should.
    assert balanced_edge_bce(wrong, target).item() > 9


@pytest.mark.parametrize(("x", "target", "low", "high"), [
    (0.0, 1.0, 5.0, 5.5), (0.0, 0.0, 3.0, 3.5),  # at 0: 3-5x weaker
    (-3.0, 1.0, 40, 50), (3.0, 0.0, 25, 35), (-4.0, 1.0, 100, 120),  # confidently wrong: far weaker
])
def test_double_sigmoid_gradient_against_the_proper_bce(x, target, low, high):
    """The gradient on an edge logit under the authors' loss, against the BCE on logits."""
    def grad(on_probabilities):  # beside a pixel of the other class, so both class weights are 1/2
        xs = torch.tensor([[[[x, 0.0]]]], requires_grad=True)
        balanced_edge_bce(xs, torch.tensor([[[[target, 1 - target]]]]), on_probabilities).backward()
        return xs.grad[0, 0, 0, 0].item()

    proper, double = grad(False), grad(True)
    assert proper * double > 0  # same direction
    assert low < proper / double < high


def test_balanced_bce_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="differ in shape"):
        balanced_edge_bce(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))


def _outputs(edge_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {k: torch.randn(2, 3, 4, 5, generator=g).requires_grad_() for k in ("main", "aux16", "aux8")}
    out["edge_logits"] = edge_logits.requires_grad_()
    return out


def test_total_is_weighted_sum_of_terms():
    cfg = LossConfig(ohem_min_kept=7, edge_ohem_min_kept=5000)
    labels = torch.randint(0, 3, (2, 4, 5), generator=torch.Generator().manual_seed(1))
    labels[0, 0, :2] = 255
    edges = (torch.rand(2, 4, 5, generator=torch.Generator().manual_seed(2)) > 0.7).float()
    edge_logits = torch.full((2, 1, 4, 5), -3.0)
    edge_logits[1, :, 2:, :] = 3.0  # sigmoid(3) = 0.95 > 0.8: these 10 pixels are "on an edge"
    out = _outputs(edge_logits)
    terms = edge_guided_loss(out, labels, edges, cfg)
    assert list(terms) == [*LOSS_TERMS, "total"]

    ohem = ohem_cross_entropy
    assert terms["main"].item() == pytest.approx(ohem(out["main"], labels, 0.7, 7).item())
    assert terms["aux16"].item() == pytest.approx(0.3 * ohem(out["aux16"], labels, 0.7, 7).item())
    assert terms["aux8"].item() == pytest.approx(0.3 * ohem(out["aux8"], labels, 0.7, 7).item())
    edge = balanced_edge_bce(out["edge_logits"], edges[:, None], on_probabilities=True)  # the authors' default
    assert terms["edge"].item() == pytest.approx(25 * edge.item())
    proper = edge_guided_loss(out, labels, edges, replace(cfg, edge_bce_on_probabilities=False))["edge"]
    assert proper.item() == pytest.approx(25 * balanced_edge_bce(out["edge_logits"], edges[:, None]).item())
    # Only 10 pixels pass the 0.8 edge threshold (< min_kept 5000): plain CE over them.
    ce = torch.nn.functional.cross_entropy(out["main"], labels, ignore_index=255, reduction="none")
    assert terms["edge_ohem"].item() == pytest.approx(ce[1, 2:, :].mean().item(), rel=1e-6)
    assert terms["total"].item() == pytest.approx(sum(terms[k].item() for k in LOSS_TERMS), rel=1e-6)


def test_edge_term_is_zero_not_nan_when_no_pixel_is_on_an_edge():
    labels = torch.randint(0, 3, (2, 4, 5), generator=torch.Generator().manual_seed(1))
    edges = torch.zeros(2, 4, 5)
    edges[:, 1, :] = 1
    out = _outputs(torch.full((2, 1, 4, 5), -3.0))  # sigmoid(-3) = 0.05: nothing above 0.8
    terms = edge_guided_loss(out, labels, edges, LossConfig())
    assert terms["edge_ohem"].item() == 0.0
    assert torch.isfinite(terms["total"])
    terms["total"].backward()
    assert all(torch.isfinite(t.grad).all() for t in out.values())
