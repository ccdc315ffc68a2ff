"""The edge-guided hard pixel mining loss of BiAlignNet.

``total = OHEM-CE(main) + 0.3 OHEM-CE(aux16) + 0.3 OHEM-CE(aux8) + 25 BCE_balanced(edge)
+ OHEM-CE(main, only where the predicted edge probability > 0.8)`` with the authors' weights and
thresholds (all in :class:`training.config.LossConfig`). Each weighted term is returned
separately so it can be logged.

Two deliberate departures from the authors' ``loss.py``:

- Their edge head output is passed through a sigmoid and then into a BCE *with logits*, a
  double sigmoid. Here the BCE takes the edge logits, so the edge map the node publishes is a
  calibrated probability; ``edge_bce_on_probabilities=True`` restores their behaviour.
- Their OHEM term is NaN when no pixel is kept (e.g. no pixel has edge probability above 0.8,
  as early in training). Here such a term is an exact zero that stays in the autograd graph,
  so every process under DDP still runs the same backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bialign_ros.classes import IGNORE_INDEX
from training.config import LossConfig

LOSS_TERMS = ("main", "aux16", "aux8", "edge", "edge_ohem")
"""Names of the loss terms, in the order they are logged; ``total`` is their sum."""


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    thresh: float = 0.7,
    min_kept: int = 10000,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Cross-entropy averaged over the hard pixels only (online hard example mining).

    A valid pixel is kept when the softmax probability of its true class is at most
    ``max(thresh, p_k)``, where ``p_k`` is the ``min_kept``-th smallest such probability, so
    at least ``min_kept`` pixels are kept. With fewer than ``min_kept`` valid pixels every
    valid pixel is kept (as in the authors' code). ``logits`` is N x C x H x W, ``target``
    N x H x W of train IDs. Returns a zero that keeps the graph when no pixel is kept.
    """
    ce = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")
    valid = target != ignore_index
    num_valid = int(valid.sum())
    if num_valid == 0:
        return ce.sum() * 0.0
    keep = valid
    if min_kept <= num_valid:
        with torch.no_grad():
            prob = torch.exp(-ce)  # softmax probability of the true class
            threshold = torch.tensor(thresh, dtype=prob.dtype, device=prob.device)
            if min_kept > 0:
                kth = prob[valid].kthvalue(min_kept).values
                threshold = torch.maximum(threshold, kth)
            keep = valid & (prob <= threshold)
    if not bool(keep.any()):
        return ce.sum() * 0.0
    return ce[keep].mean()


def balanced_edge_bce(
    edge_logits: torch.Tensor, edge_target: torch.Tensor, on_probabilities: bool = False
) -> torch.Tensor:
    """Class-balanced binary cross-entropy of the edge head over the whole batch.

    Edge pixels are weighted by the fraction of non-edge pixels and vice versa; target values
    other than 0 and 1 are ignored; the weighted sum is divided by the number of pixels.
    ``on_probabilities`` feeds ``sigmoid(edge_logits)`` to the BCE-with-logits as the authors
    did (double sigmoid).
    """
    if edge_logits.shape != edge_target.shape:
        raise ValueError(
            f"edge logits {tuple(edge_logits.shape)} and target {tuple(edge_target.shape)} differ in shape"
        )
    x = edge_logits.float()
    if on_probabilities:
        x = torch.sigmoid(x)
    target = edge_target.float()
    pos = target == 1
    neg = target == 0
    num_pos = pos.sum()
    num_neg = neg.sum()
    total = (num_pos + num_neg).clamp(min=1).float()
    weight = torch.zeros_like(target)
    weight[pos] = num_neg.float() / total
    weight[neg] = num_pos.float() / total
    return F.binary_cross_entropy_with_logits(x, target.clamp(0, 1), weight=weight, reduction="mean")


def edge_guided_loss(
    outputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    edges: torch.Tensor,
    cfg: LossConfig,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, torch.Tensor]:
    """All weighted loss terms (:data:`LOSS_TERMS`) and their sum under ``"total"``.

    ``outputs`` is the train-mode model output (``main``, ``edge_logits``, ``aux16``, ``aux8``,
    all at the label size); ``labels`` N x H x W train IDs; ``edges`` N x H x W or N x 1 x H x W
    binary edge ground truth.
    """
    main = outputs["main"]
    edge_logits = outputs["edge_logits"]
    if edges.dim() == 3:
        edges = edges.unsqueeze(1)

    def ohem(logits: torch.Tensor, target: torch.Tensor, min_kept: int) -> torch.Tensor:
        return ohem_cross_entropy(logits, target, cfg.ohem_thresh, min_kept, ignore_index)

    with torch.no_grad():
        on_edge = torch.sigmoid(edge_logits.float()).amax(dim=1) > cfg.edge_ohem_threshold
        edge_labels = torch.where(on_edge, labels, torch.full_like(labels, ignore_index))
    terms = {
        "main": ohem(main, labels, cfg.ohem_min_kept),
        "aux16": cfg.aux_weight * ohem(outputs["aux16"], labels, cfg.ohem_min_kept),
        "aux8": cfg.aux_weight * ohem(outputs["aux8"], labels, cfg.ohem_min_kept),
        "edge": cfg.edge_weight * balanced_edge_bce(edge_logits, edges, cfg.edge_bce_on_probabilities),
        "edge_ohem": cfg.edge_ohem_weight * ohem(main, edge_labels, cfg.edge_ohem_min_kept),
    }
    terms["total"] = sum(terms.values())
    return terms
