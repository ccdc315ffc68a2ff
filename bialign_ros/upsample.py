"""Network outputs brought to the camera's size exactly as bilinear upsampling of the logits defines them.

When the network runs at another size than the image (``input_scale``, a fixed-size export), the
labels are the argmax of the logits resized bilinearly (``align_corners=False``, PyTorch's
``F.interpolate``) to the image's size, the edges the sigmoid of the resized edge logit and the
confidence the largest softmax probability of the resized logits: what the model itself computes
when asked for another output size.

Labels do not need all classes resized everywhere. Each output pixel mixes the logits of the four
network pixels around it with non-negative weights that sum to 1; where those four share their
winning class, every such mix keeps it winning (the winning logit is at least every other in each
of the four, so also in any convex combination). Only pixels whose four neighbours disagree (next
to a label boundary) have their logits mixed here; the others take their neighbours' label.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial

import cv2
import numpy as np

from bialign_ros.backends.contract import HEAD_FACTOR
from bialign_ros.worker_pool import WorkerPool

FEW = 4
"""Cells with at most this many contending classes mix only theirs; more mix every class."""


@dataclass(frozen=True)
class AxisWeights:
    """Bilinear sampling along one axis, from ``src`` to ``dst`` samples (``align_corners=False``).

    Output ``i`` mixes source ``lo[i]`` with weight ``1 - frac[i]`` and ``hi[i]`` with ``frac[i]``,
    where ``hi = min(lo + 1, src - 1)``, as PyTorch computes it (source positions below 0 clamp to 0).
    """

    lo: np.ndarray
    hi: np.ndarray
    frac: np.ndarray
    start: np.ndarray
    """start[j]: the first output index whose ``lo`` is j (``start[src]`` = dst); ``lo`` never decreases."""


@lru_cache(maxsize=32)
def axis_weights(src: int, dst: int) -> AxisWeights:
    """:class:`AxisWeights` for resizing ``src`` samples to ``dst`` (cached: the sizes repeat per frame)."""
    pos = np.maximum((np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5, 0.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    hi = np.minimum(lo + 1, src - 1)
    frac = (pos - lo).astype(np.float32)
    frac[lo == hi] = 0.0
    start = np.searchsorted(lo, np.arange(src + 1), side="left")
    for a in (lo, hi, frac, start):
        a.flags.writeable = False
    return AxisWeights(lo, hi, frac, start)


def fast_path(height: int, width: int) -> bool:
    """Whether the graph's heads take their fast path at this network size (multiples of 8): its
    logits then come as (h/8 w/8) x (64 channels) blocks, else as channels x h x w planes."""
    return height % HEAD_FACTOR == 0 and width % HEAD_FACTOR == 0


def per_image(raw: np.ndarray, count: int, height: int, width: int) -> list[np.ndarray]:
    """A batch's logits output (either layout, see :func:`fast_path`) split into its ``count`` images."""
    if fast_path(height, width):
        return np.split(raw, count)
    return list(raw)


class NetworkLogits:
    """The class logits of one image at the network's size ``height`` x ``width``, in the layout the
    graph gives them (:func:`fast_path`).

    Blocks: the classifier's output before the pixel shuffle, (h/8 * w/8) x (64 * classes), sub-pixel
    major and class minor; planes: classes x h x w.
    """

    def __init__(self, data: np.ndarray, height: int, width: int):
        self.height, self.width = height, width
        if fast_path(height, width):
            f = HEAD_FACTOR
            self.classes = data.shape[-1] // (f * f)
            self._rows, self._planes = data.reshape(-1, self.classes), None
        else:
            self.classes = data.shape[0]
            self._rows, self._planes = None, data

    def sites(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Where the logits of network pixels (ys[i], xs[i]) are stored: the indices :meth:`rows` takes."""
        row_part, col_part = _site_parts(self.height, self.width, self._planes is None)
        return row_part.take(ys) + col_part.take(xs)

    def rows(self, sites: np.ndarray) -> np.ndarray:
        """float32 logits of every class at ``sites``: len(sites) x classes."""
        if self._planes is not None:
            return np.ascontiguousarray(self._planes.reshape(self.classes, -1)[:, sites].T, dtype=np.float32)
        return self._rows.take(sites, axis=0).astype(np.float32, copy=False)

    def plane_rows(self, start: int, stop: int) -> np.ndarray:
        """Network rows start to stop - 1 of every class as float32 classes x rows x w."""
        if self._planes is not None:
            return self._planes[:, start:stop].astype(np.float32, copy=False)
        f, hb, wb = HEAD_FACTOR, self.height // HEAD_FACTOR, self.width // HEAD_FACTOR
        ys = np.arange(start, stop)
        b = self._rows.reshape(hb, wb, f, f, self.classes)[ys // f, :, ys % f]  # rows x w/8 x 8 x classes
        return np.ascontiguousarray(b.transpose(3, 0, 1, 2), dtype=np.float32).reshape(self.classes, stop - start, -1)

    def planes(self) -> np.ndarray:
        """All logits as float32 classes x h x w."""
        return self.plane_rows(0, self.height)


@lru_cache(maxsize=32)
def _site_parts(height: int, width: int, blocks: bool) -> tuple[np.ndarray, np.ndarray]:
    """Storage index of network pixel (y, x) as row_part[y] + col_part[x], in blocks or planes."""
    ys, xs = np.arange(height, dtype=np.int64), np.arange(width, dtype=np.int64)
    if not blocks:
        return ys * width, xs
    f = HEAD_FACTOR
    return (ys // f) * (width // f) * (f * f) + (ys % f) * f, (xs // f) * (f * f) + xs % f


def unshuffle_edge_logits(data: np.ndarray, height: int, width: int) -> np.ndarray:
    """Edge logits of one image at the network's size (h x w float32) from the graph's output:
    (h/8 * w/8) x 64 blocks on the fast path, else already h x w."""
    if fast_path(height, width):
        f = HEAD_FACTOR
        data = data.reshape(height // f, width // f, f, f).transpose(0, 2, 1, 3).reshape(height, width)
    return data.astype(np.float32, copy=False)


def boundary_cells(labels: np.ndarray) -> np.ndarray:
    """h x w bool: network pixel (i, j) whose 2 x 2 cell with (i+1, j), (i, j+1), (i+1, j+1) (clamped
    at the last row and column) holds more than one label."""
    padded = np.pad(labels, ((0, 1), (0, 1)), mode="edge")
    here = padded[:-1, :-1]
    return (here != padded[1:, :-1]) | (here != padded[:-1, 1:]) | (here != padded[1:, 1:])


def upsample_labels(labels: np.ndarray, logits: NetworkLogits, size: tuple[int, int],
                    pool: WorkerPool | None = None) -> np.ndarray:
    """H x W uint8: the argmax of ``logits`` resized bilinearly to ``size`` = (H, W).

    ``labels`` (h x w uint8) is the argmax of the same logits at the network's size; it decides
    which pixels need their logits mixed (see the module's docstring). Within a boundary cell,
    class c can win somewhere only if its largest corner logit reaches the largest smallest-corner
    logit of any class; where just two classes can (most cells), the winner at a pixel is the sign
    of one mixed logit difference, up to :data:`FEW` mix only theirs, and only the rest mix every class.
    Cells whose output pixels form rectangles of one shape are mixed together, by broadcasting.
    With a ``pool``, the boundary cells are shared out evenly among its threads.
    """
    (h, w), (out_h, out_w) = labels.shape, size
    ay, ax = axis_weights(h, out_h), axis_weights(w, out_w)
    if out_h >= h and out_w >= w:
        # Nearest neighbour picks one of each output pixel's four neighbours when enlarging: right
        # wherever they agree, and the boundary cells are recomputed below.
        out = cv2.resize(labels, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
    else:
        out = np.ascontiguousarray(labels.take(ay.lo, axis=0).take(ax.lo, axis=1))
    pool = pool or WorkerPool(1)
    # Cells cover disjoint output pixels, so any share of them can be written concurrently.
    cells = np.array_split(np.flatnonzero(boundary_cells(labels)), pool.workers)
    pool.map(partial(_mix_cells, out, logits, ay, ax), [c for c in cells if c.size])
    return out


def _mix_cells(out: np.ndarray, logits: NetworkLogits, ay: AxisWeights, ax: AxisWeights, cells: np.ndarray) -> None:
    """Writes into ``out`` the mixed labels of the boundary ``cells`` (flat network pixel indices; see
    :func:`upsample_labels`)."""
    ci, cj = np.divmod(cells, logits.width)  # flatnonzero and divmod: several times faster than a 2-D nonzero
    rows, cols = np.diff(ay.start)[ci], np.diff(ax.start)[cj]
    keep = (rows > 0) & (cols > 0)
    ci, cj, rows, cols = ci[keep], cj[keep], rows[keep], cols[keep]
    if ci.size == 0:
        return
    # Where each cell's corner logits are: top-left, top-right, bottom-left, bottom-right.
    i1, j1 = ay.hi[ay.start[ci]], ax.hi[ax.start[cj]]
    corners = [logits.sites(ci, cj), logits.sites(ci, j1), logits.sites(i1, cj), logits.sites(i1, j1)]
    # Every class's logit at each corner (4 x cells x classes), and its smallest and largest over the corners.
    at = [logits.rows(sites) for sites in corners]
    low, high = at[0].copy(), at[0].copy()
    for v in at[1:]:
        np.minimum(low, v, out=low)
        np.maximum(high, v, out=high)
    best_low = low[:, 0].copy()  # the largest smallest-corner logit, a column at a time (faster than max(1))
    for c in range(1, logits.classes):
        np.maximum(best_low, low[:, c], out=best_low)
    contenders = high >= best_low[:, None]
    n = contenders.view(np.uint8).sum(1, dtype=np.uint8)
    # Classes to mix per cell: the two of a pair (the sign of l_b - l_a decides, argmax taking a on a
    # tie), up to FEW contenders, or every class (rare). The output pixels of a cell form a rectangle
    # (rows start[i] + 0..R-1, columns likewise): cells are sorted by how many classes they mix and by
    # their rectangle's shape, so that each kind is one slice, mixed together by broadcasting.
    tall, wide = int(rows.max()) + 1, int(cols.max()) + 1
    kinds = tall * wide
    key = (np.minimum(n, FEW + 1).astype(np.int64) - 2) * kinds + rows * wide + cols
    order = np.argsort(key, kind="stable")
    key, ci, cj = key[order], ci[order], cj[order]
    bounds = np.flatnonzero(np.diff(key)).tolist()
    group = None
    for s, e in zip([0, *(b + 1 for b in bounds)], [*(b + 1 for b in bounds), key.size]):
        g, shape = divmod(int(key[s]), kinds)
        if g < 0:  # a single contender: never on a boundary (both corner winners contend)
            continue
        if g != group:  # the first kind of a group: its cells' classes and corner values
            group, first = g, s
            last = int(np.searchsorted(key, (g + 1) * kinds))
            vals, classes = _group_values(at, contenders, order[s:last], g + 2 if g + 2 <= FEW else None)
        r, c = divmod(shape, wide)
        ys = ay.start[ci[s:e], None] + np.arange(r)  # cells x R
        xs = ax.start[cj[s:e], None] + np.arange(c)  # cells x C
        v = vals[:, s - first : e - first, None, None, :]  # 4 x cells x 1 x 1 x width
        mixed = _mix(v, ay.frac[ys][:, :, None, None], ax.frac[xs][:, None, :, None])  # cells x R x C x width
        if classes is None:
            won = mixed.argmax(-1)
        else:
            cand = classes[s - first : e - first, None, None, :]
            if classes.shape[1] == 2:
                won = np.where(mixed[..., 0] > 0, cand[..., 1], cand[..., 0])
            else:
                won = np.take_along_axis(cand, mixed.argmax(-1)[..., None], -1)[..., 0]
        out[ys[:, :, None], xs[:, None, :]] = won


def _group_values(at: list[np.ndarray], contenders: np.ndarray, cells: np.ndarray,
                  width: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(corner values, classes) of ``cells`` (indices into ``at``'s rows) that mix ``width`` contending
    classes each, or every class (``width`` None): values 4 x cells x width (for a pair, one: the
    second class's logit minus the first's), classes cells x width in class order (None for every class)."""
    if width is None:
        return np.stack([v.take(cells, axis=0) for v in at]), None
    classes = (np.flatnonzero(contenders[cells]) % contenders.shape[1]).reshape(-1, width)
    picks = cells[:, None] * contenders.shape[1] + classes
    vals = np.stack([v.reshape(-1).take(picks) for v in at])
    return (vals[..., 1:] - vals[..., :1] if width == 2 else vals), classes


def _mix(corners: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Bilinear mix of corner values (4 x ...: top-left, top-right, bottom-left, bottom-right)."""
    top = corners[0] + wx * (corners[1] - corners[0])
    bottom = corners[2] + wx * (corners[3] - corners[2])
    return top + wy * (bottom - top)


def resize_bilinear(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float32 h x w map resized bilinearly to ``size`` = (H, W), ``align_corners=False``."""
    return cv2.resize(plane, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def upsample_edges(edge_logits: np.ndarray, size: tuple[int, int], pool: WorkerPool | None = None) -> np.ndarray:
    """H x W float32 edge probability: the sigmoid of the edge logits resized bilinearly to ``size``
    (with a ``pool``, in bands of rows on its threads)."""
    z = resize_bilinear(np.negative(edge_logits), size)  # resizing is linear: negated before, on fewer pixels
    pool = pool or WorkerPool(1)
    pool.map(_sigmoid_of_negated, np.array_split(z, pool.workers))
    return z


def _sigmoid_of_negated(band: np.ndarray) -> None:
    """1 / (1 + exp(band)) in place: the sigmoid of the values ``band`` holds negated."""
    _exp(band)
    band += 1.0
    np.reciprocal(band, out=band)


CONFIDENCE_BAND_BYTES = 1 << 22
"""Resized logits of every class held at once for one band of output rows (the band stays in cache)."""


def upsample_confidence(logits: NetworkLogits, size: tuple[int, int], pool: WorkerPool | None = None) -> np.ndarray:
    """H x W float32: the largest softmax probability of the logits resized bilinearly to ``size``.

    Computed in bands of output rows (with a ``pool``, on its threads): each band's rows are mixed
    from their two network rows, then resized along the rows only, then reduced over the classes.
    """
    (out_h, out_w), classes = size, logits.classes
    ay = axis_weights(logits.height, out_h)
    out = np.empty(size, np.float32)
    rows = max(1, CONFIDENCE_BAND_BYTES // (4 * classes * out_w))

    def band(start: int) -> None:
        take = slice(start, min(start + rows, out_h))
        first = int(ay.lo[start])
        planes = logits.plane_rows(first, int(ay.hi[take.stop - 1]) + 1)  # the network rows the band mixes
        top = planes[:, ay.lo[take] - first]
        mixed = top + ay.frac[take, None] * (planes[:, ay.hi[take] - first] - top)  # classes x r x w
        r = mixed.shape[1]
        wide = cv2.resize(mixed.reshape(classes * r, -1), (out_w, classes * r),
                          interpolation=cv2.INTER_LINEAR).reshape(classes, r, out_w)
        wide -= wide.max(0)
        _exp(wide)
        np.reciprocal(wide.sum(0), out=out[take])

    (pool or WorkerPool(1)).map(band, range(0, out_h, rows))
    return out


def _exp(a: np.ndarray) -> None:
    """exp of a C-contiguous float32 array in place: OpenCV's (about 2.5x NumPy's on one core here)."""
    flat = a.reshape(-1, a.shape[-1])  # a view; OpenCV takes 2-D arrays of any width
    cv2.exp(flat, flat)
