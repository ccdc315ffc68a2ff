"""The network as every backend runs it: uint8 RGB images in, uint8 labels and edge probability out.

:class:`InferenceGraph` wraps a :class:`~bialign_ros.model.BiAlignNet` in eval mode and rewrites it
for inference. The torch backend runs it directly and the ONNX exports trace it, so all backends
share one pre- and post-processing. The rewrites leave every label unchanged (up to floating-point
rounding):

- Normalisation is part of the graph: it subtracts the mean, and ``1/std`` (and a BGR channel
  order) is folded into the weights of the two convolutions that read the image.
- Batch norms are folded into the convolutions before them.
- The flow convolutions (3x3, 2 outputs) run as a 1x1 convolution to 18 per-tap channels and a
  sum of shifted maps (:class:`TapSumConv`), a fraction of the cost on CPUs.
- Optionally (``space_to_depth``), those two stride-2 convolutions on 3 channels (backbone stem
  3x3, spatial path 7x7) run as stride-1 convolutions on the 12-channel space-to-depth image. The
  result is the same; CPUs run 12-channel convolutions several times faster.
- When the output of the heads already has the image's size (height and width multiples of 8),
  the class argmax runs on the classifier's classes x 64 channels at 1/8 resolution BEFORE the pixel
  shuffle: the shuffle only permutes pixels and the final resize is then the identity, so the
  labels are the same while the shuffle moves one uint8 channel instead of one float channel per
  class (the class count is the checkpoint's: 19 for Cityscapes, any other for one's own). In the
  exported graph the classifier's output channels are reordered (sub-pixel major, class minor) so
  that the argmax reduces the innermost axis in channels-last memory (ONNX Runtime's fastest);
  eager PyTorch instead computes one plane per class and reduces across the planes element-wise
  (:meth:`ShuffleHead._class_planes`, the same labels). The edge head applies its sigmoid before
  its shuffle in the same way, and the confidence (the winning class's softmax probability) is
  taken from the same logits. Other sizes take the model's own path (shuffle, resize, argmax).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from bialign_ros.backends.contract import HEAD_FACTOR  # noqa: F401 - its earlier home, still importable
from bialign_ros.checkpoint import ModelMeta
from bialign_ros.model import BiAlignNet
from bialign_ros.model.heads import PixelShuffleHead
from bialign_ros.model.layers import known_true, resize


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into that convolution, in place.

    Covers the pairs of this model: consecutive entries of an ``nn.Sequential`` and the attribute
    pairs ``conv``/``bn``, ``conv1``/``bn1``, ``conv2``/``bn2``. The batch norm becomes ``Identity``.
    """
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            for i in range(len(parent) - 1):
                if isinstance(parent[i], nn.Conv2d) and isinstance(parent[i + 1], nn.BatchNorm2d):
                    parent[i] = fuse_conv_bn_eval(parent[i], parent[i + 1])
                    parent[i + 1] = nn.Identity()
        for conv_name, bn_name in (("conv", "bn"), ("conv1", "bn1"), ("conv2", "bn2")):
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    return module


def space_to_depth_conv(conv: nn.Conv2d) -> nn.Sequential:
    """The stride-1 equivalent of a stride-2 convolution, applied to the space-to-depth input.

    ``conv`` must have stride 2, an odd square kernel k and padding k // 2. The returned module
    takes the space-to-depth rearrangement of an input with even height and width (each 2 x 2
    block becomes 4 x C channels, ordered row offset, column offset, channel; see
    :meth:`InferenceGraph.network_input`) and returns exactly ``conv(x)``: zero padding, then a
    (k + 1) // 2 + 1 square kernel whose taps outside the original kernel are zero.
    """
    k = conv.kernel_size[0]
    if (conv.stride != (2, 2) or conv.kernel_size != (k, k) or k % 2 == 0 or conv.padding != (k // 2, k // 2)
            or conv.dilation != (1, 1) or conv.groups != 1):
        raise ValueError(f"space_to_depth_conv needs a stride-2 odd square kernel with 'same' padding; "
                         f"got {conv}")
    pad = k // 2
    lo, hi = (-pad) // 2, (k - 1 - pad) // 2  # block offsets read by an output, relative to its own
    kk = hi - lo + 1
    w = conv.weight.detach()
    out_ch, in_ch = w.shape[:2]
    new = torch.zeros(out_ch, 2, 2, in_ch, kk, kk, dtype=w.dtype)
    for ty in range(k):
        by, ay = (ty - pad) % 2, (ty - pad) // 2 - lo
        for tx in range(k):
            bx, ax = (tx - pad) % 2, (tx - pad) // 2 - lo
            new[:, by, bx, :, ay, ax] = w[:, :, ty, tx]
    s2d = nn.Conv2d(4 * in_ch, out_ch, kk, bias=conv.bias is not None)
    s2d.weight.data.copy_(new.reshape(out_ch, 4 * in_ch, kk, kk))
    if conv.bias is not None:
        s2d.bias.data.copy_(conv.bias.detach())
    return nn.Sequential(nn.ZeroPad2d((-lo, hi, -lo, hi)), s2d)


class TapSumConv(nn.Module):
    """A k x k convolution with few outputs (stride 1, 'same' zero padding) as one 1x1 convolution to
    k * k * outputs channels, a partial sum per tap, plus the sum of the k * k shifted partial sums.

    The same result up to rounding. CPU back ends pad the flow convolution's 2 outputs to a whole
    vector of channels (8 to 16 times the work); the 18 per-tap channels waste far less.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        k = conv.kernel_size[0]
        if (conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1)
                or conv.padding != (k // 2, k // 2) or conv.dilation != (1, 1) or conv.groups != 1):
            raise ValueError(f"TapSumConv needs a stride-1 odd square kernel with 'same' padding; got {conv}")
        self.k, self.outputs = k, conv.out_channels
        w = conv.weight.detach()  # outputs x inputs x k x k
        self.taps = nn.Conv2d(conv.in_channels, k * k * conv.out_channels, 1, bias=False)
        self.taps.weight.data.copy_(w.permute(2, 3, 0, 1).reshape(-1, conv.in_channels, 1, 1))
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        k, m = self.k, self.outputs
        partial = F.pad(self.taps(x), (k // 2,) * 4)
        out = partial[:, :m, :h, :w]
        for t in range(1, k * k):
            ty, tx = divmod(t, k)
            out = out + partial[:, t * m:(t + 1) * m, ty:ty + h, tx:tx + w]
        return out if self.bias is None else out + self.bias


def _space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """N x H x W x C (H, W even) -> N x 4C x H/2 x W/2, channels ordered (row offset, column offset, C)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4 * c)
    return x.permute(0, 3, 1, 2)


def _scale_input_channels(conv: nn.Conv2d, scale: torch.Tensor, order: list[int]) -> None:
    """Multiply the weights of input channel c by ``scale[c]`` after reordering them by ``order``."""
    w = conv.weight.detach()[:, order] * scale.view(1, -1, 1, 1)
    conv.weight.data.copy_(w)


PLANE_BLOCK_BYTES = 8 << 20
"""Bytes of class planes reduced at a time on the CPU (:meth:`ShuffleHead._class_planes`): small enough
to stay in cache, large enough that the per-block calls cost little (at 1024x2048 in bf16, blocks of
2048 to 4096 pixels were the fastest; whole frames and 16384 pixels 1.6 to 2.2 times slower)."""


class ShuffleHead(nn.Module):
    """A :class:`PixelShuffleHead` with its output reduced before the shuffle where that is exact.

    ``kind="labels"``: argmax over ``classes`` (uint8 N x H x W); ``kind="edges"``: sigmoid of the
    single channel (N x H x W). The 1x1 classifier runs as a matrix product on channels-last
    features (``classifier``, an ``nn.Linear``), its outputs ordered sub-pixel major, class minor,
    so the argmax reduces the innermost axis; eager PyTorch (not exporting, logits not asked for)
    takes the labels and confidence from per-class planes instead.
    """

    def __init__(self, head: PixelShuffleHead, classes: int, kind: str):
        super().__init__()
        if kind not in ("labels", "edges"):
            raise ValueError(f"kind must be 'labels' or 'edges', got {kind!r}")
        self.kind = kind
        self.classes = classes
        self.factor = head.up.upscale_factor
        self.conv = head.conv
        src = head.conv_out
        ff = self.factor ** 2
        self.classifier = nn.Linear(src.in_channels, classes * ff)
        # PixelShuffle reads channel (class * ff + sub-pixel); store (sub-pixel * classes + class).
        w = src.weight.detach().reshape(classes, ff, -1).transpose(0, 1).reshape(classes * ff, -1)
        self.classifier.weight.data.copy_(w)
        self.classifier.bias.data.copy_(src.bias.detach().reshape(classes, ff).t().reshape(-1))

    @torch.compiler.disable
    def _class_planes(self, x: torch.Tensor, confidence: bool) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        """Labels (and confidence) of the fast path as PyTorch computes them fastest: the classifier's
        output transposed, one plane of (sub-pixel, pixel) values per class, so that every reduction
        over the classes is an element-wise operation between planes. The innermost-axis reductions of
        the exported path (argmax, max, sum over 19 values) run 2-4 times slower in eager PyTorch on
        CPUs (512x1024, bf16: 64 of 170 ms a frame with the confidence). The same labels, ties included
        (the first class wins).

        On the CPU the pixels go through in blocks of about :data:`PLANE_BLOCK_BYTES` of planes, so that
        the classifier's output is reduced while it is still in cache: at 1024x2048 the planes of the
        whole frame are 80 MB in bf16, and each of the five passes over them went to memory (bf16 on
        the 2-core Xeon: labels 74-96 -> 44 ms, with the confidence 122-127 -> 67-73 ms).
        """
        n, c, h, w = x.shape
        f, ff, k = self.factor, self.factor ** 2, self.classes
        pixels = n * h * w
        # (classes x sub-pixels) x pixels, with the pixels of channels-last features read in place
        features = x.permute(1, 0, 2, 3).reshape(c, pixels)
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else features.dtype
        weight = self.classifier.weight.view(ff, k, -1).transpose(0, 1).reshape(k * ff, -1).to(dtype)
        bias = self.classifier.bias.view(ff, k).t().reshape(k * ff, 1).to(dtype)
        block = pixels if x.is_cuda else max(1, PLANE_BLOCK_BYTES // (k * ff * weight.element_size()))
        # The first class that reaches the maximum: the largest of (classes - c) where plane c does.
        rank = torch.arange(k, 0, -1, dtype=torch.uint8, device=x.device).unsqueeze(1)
        labels = torch.empty(ff, pixels, dtype=torch.uint8, device=x.device)
        conf = torch.empty(ff, pixels, dtype=torch.float32, device=x.device) if confidence else None
        for start in range(0, pixels, block):
            stop = min(pixels, start + block)
            planes = torch.addmm(bias, weight, features[:, start:stop].to(dtype)).view(k, -1)
            best = planes.amax(0)
            winners = _equal(planes, best) * rank  # bool x uint8: uint8
            labels[:, start:stop] = (k - winners.amax(0)).view(ff, stop - start)
            if confidence:  # 1 / sum(exp(l - max l)) as max_softmax, a plane at a time
                best = best.float()
                total = torch.zeros_like(best)
                for plane in planes:
                    total += torch.exp(plane.float() - best)
                conf[:, start:stop] = total.reciprocal_().view(ff, stop - start)

        def unshuffle(t: torch.Tensor) -> torch.Tensor:  # (f, f, n, h, w) -> (n, h f, w f)
            return t.view(f, f, n, h, w).permute(2, 3, 0, 4, 1).reshape(n, h * f, w * f)

        return unshuffle(labels), None if conf is None else unshuffle(conf), None

    def forward(self, x: torch.Tensor, size: tuple[int, int], confidence: bool = False,
                logits: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(labels or edge probability, N x H x W; the winning class's softmax probability when
        ``confidence`` and ``kind="labels"``, else None; the logits behind them when ``logits``, else None).

        The logits are the classifier's output as computed: (N h w) x (64 classes) before the pixel
        shuffle on the fast path, else N x classes x H x W (labels) or N x H x W (edges); see
        :class:`bialign_ros.upsample.NetworkLogits`.
        """
        x = self.conv(x)
        n, _, h, w = x.shape
        f, ff, k = self.factor, self.factor ** 2, self.classes
        fast_path = known_true(size[0] % f == 0) and known_true(size[1] % f == 0)
        if fast_path and self.kind == "labels" and not logits and not torch.compiler.is_exporting():
            return self._class_planes(x, confidence)
        # One (N h w) x C matrix product: a Gemm in ONNX, with the bias, quantisable as a whole.
        y = self.classifier(x.permute(0, 2, 3, 1).reshape(n * h * w, -1))
        raw = y if logits else None
        if fast_path:
            # The heads' grid is ceil(size / 8), so they output exactly the image size. Stated for exports
            # with symbolic sizes, whose shape arithmetic cannot carry it through the strided layers.
            if not torch.jit.is_tracing():
                torch._check(h * f == size[0])
                torch._check(w * f == size[1])
            def unshuffle(t: torch.Tensor) -> torch.Tensor:
                return t.reshape(n, h, w, f, f).permute(0, 1, 3, 2, 4).reshape(n, h * f, w * f)

            if self.kind != "labels":
                return unshuffle(torch.sigmoid(y)), None, raw
            y = y.reshape(-1, k)  # 2-D: the fastest argmax in ONNX Runtime
            conf = unshuffle(max_softmax(y, -1)) if confidence else None
            return unshuffle(y.argmax(-1).to(torch.uint8)), conf, raw
        # The model's own order: shuffle, resize to the image, then argmax / sigmoid.
        planes = y.reshape(n, h, w, ff, k).permute(0, 4, 3, 1, 2).reshape(n, k * ff, h, w)
        planes = resize(F.pixel_shuffle(planes, f), size)
        if self.kind != "labels":
            return torch.sigmoid(planes[:, 0]), None, planes[:, 0] if logits else None
        conf = max_softmax(planes, 1) if confidence else None
        return planes.argmax(1).to(torch.uint8), conf, planes if logits else None


_SAME_WIDTH_INT = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32}


def _equal(planes: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """``planes == best`` (broadcast over the planes). On the CPU the bit patterns are compared where
    that is the same: twice as fast in bf16 (2.5 -> 1.2 ms for 19 planes of 220k pixels on the 2-core
    Xeon). Equal floats have equal bits but for +0 and -0, so a block whose maximum is a zero anywhere
    compares as floats; traced and compiled graphs always compare as floats, since a dtype view does
    not trace and the check depends on the data."""
    bits = _SAME_WIDTH_INT.get(planes.dtype)
    if (bits is None or planes.is_cuda or torch.jit.is_tracing() or torch.compiler.is_compiling()
            or bool((best == 0).any())):
        return planes == best
    return planes.view(bits) == best.view(bits)


def max_softmax(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """The largest softmax probability along ``dim``: ``1 / sum(exp(l - max l))``, in fp32 whatever
    the logits' dtype (it is the confidence of the argmax along that axis)."""
    logits = logits.float()
    # In place after the one subtraction: each fresh full-frame temporary costs as much as the
    # arithmetic on it (eager CPU, 19 x 1024 x 512: 58 -> 40 ms).
    shifted = logits - logits.amax(dim, keepdim=True)
    return shifted.exp_().sum(dim).reciprocal_()


class InferenceGraph(nn.Module):
    """``forward(images)``: N x H x W x 3 uint8 RGB -> (labels N x H x W uint8, edges N x H x W float,
    confidence N x H x W float32 or None).

    Built from a trained model (which is copied, not changed) and its metadata (mean, std, channel
    order, number of classes). The edge output has the model's floating-point dtype.
    """

    def __init__(self, model: BiAlignNet, meta: ModelMeta, space_to_depth: bool = True):
        super().__init__()
        if not getattr(model, "edge", False):
            raise ValueError("the inference graph needs a model built with its edge head (edge=True)")
        net = fold_batch_norms(copy.deepcopy(model).eval())
        self.space_to_depth = space_to_depth
        self.backbone, self.ppm, self.sp = net.backbone, net.ppm, net.sp
        self.spatial2Context, self.context2Spatial = net.spatial2Context, net.context2Spatial
        for align in (self.spatial2Context, self.context2Spatial):
            align.flow_make = TapSumConv(align.flow_make)
        self.label_head = ShuffleHead(net.conv_out, meta.num_classes, "labels")
        self.edge_head = ShuffleHead(net.spatial_out, 1, "edges")

        # Image channel c (RGB) is model input channel order[c]; mean/std are given in model order.
        order = [2, 1, 0] if meta.channel_order == "bgr" else [0, 1, 2]
        mean = torch.tensor(meta.mean, dtype=torch.float32)[order] * 255.0
        inv_std = 1.0 / (torch.tensor(meta.std, dtype=torch.float32)[order] * 255.0)
        stem = self.backbone.stage1
        _scale_input_channels(stem[0], inv_std, order)
        _scale_input_channels(self.sp.conv1.conv, inv_std, order)
        if space_to_depth:
            stem[0] = space_to_depth_conv(stem[0])
            self.sp.conv1.conv = space_to_depth_conv(self.sp.conv1.conv)
        self.channels_last = False
        """Run the convolutions in channels-last memory (set by the torch backend; no effect on exports)."""
        self.size_multiple = 1
        """Image sizes are declared multiples of this (a dynamic-size export sets 8: the fast head path)."""
        self.logits_by_default = False
        """Whether ``forward`` gives the logits when not told (an export sets it: its graph has them)."""
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)

    def network_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N x H x W x 3 -> what the first convolutions read, mean subtracted: N x 3 x H x W, or
        with ``space_to_depth`` N x 12 x ceil(H/2) x ceil(W/2) (channels: row offset, column offset,
        colour). Both are channels-last views, the memory layout CPU back ends convolve in, so an
        export needs no transpose besides the one space-to-depth copy. Under autocast the result has
        the autocast dtype.
        """
        dtype = self.mean.dtype  # the graph's float type (its weights may be rounded for autocast)
        mean = self.mean
        n, h, w, _ = images.shape
        if not self.space_to_depth:
            x = images.permute(0, 3, 1, 2).to(dtype) - mean
        elif h % 2 or w % 2:
            # Odd sizes: zero padding after normalisation is the convolutions' own padding.
            x = _space_to_depth(F.pad(images.to(dtype) - mean.view(1, 1, 1, 3), (0, 0, 0, w % 2, 0, h % 2)))
        else:  # even sizes: rearranged while still uint8 (a quarter of the bytes), then normalised
            x = _space_to_depth(images).to(dtype) - mean.repeat(1, 4, 1, 1)
        if torch.is_autocast_enabled(x.device.type) and x.dtype == torch.float32:
            # Rounded once here, as autocast rounds it for each convolution: the same values, and the
            # convolutions' zero padding and reads move half the bytes
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return x

    def forward(self, images: torch.Tensor, confidence: bool = True,
                logits: bool | None = None) -> tuple[torch.Tensor | None, ...]:
        """Labels, edge probability and (with ``confidence``, as exports have it) the winning class's
        softmax probability, computed at 1/8 resolution before the pixel shuffle like the labels.

        With ``logits`` (default :attr:`logits_by_default`; exports have them), also the class logits
        and the edge logit that those are computed from (layouts in :meth:`ShuffleHead.forward`):
        what bringing the outputs to another size needs (:mod:`bialign_ros.upsample`).
        """
        logits = self.logits_by_default if logits is None else logits
        size = (images.shape[1], images.shape[2])
        if self.size_multiple > 1:
            torch._check(size[0] % self.size_multiple == 0)
            torch._check(size[1] % self.size_multiple == 0)
        x = self.network_input(images)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        _, _, feat32 = self.backbone(x)
        context = self.ppm(feat32)
        spatial = self.sp(x)
        context_aligned = self.spatial2Context(spatial, context)
        spatial_aligned = self.context2Spatial(spatial, context)
        labels, conf, class_logits = self.label_head(torch.cat([context_aligned, spatial_aligned], dim=1), size,
                                                     confidence, logits)
        edges, _, edge_logits = self.edge_head(spatial_aligned, size, logits=logits)
        if logits:
            return labels, edges, conf, class_logits, edge_logits
        return labels, edges, conf
