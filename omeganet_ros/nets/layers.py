"""Building blocks shared by the ΩNet networks: conv blocks, padding, warping, correlation.

Everything here is plain PyTorch without data-dependent Python control flow, so
it runs under ``torch.compile``, ``torch.autocast("cpu", dtype=torch.bfloat16)``
and exports to ONNX (opset 17).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

# ImageNet-like statistics used by monodepth2 to centre [0, 1] RGB inputs.
IMAGE_MEAN = 0.45
IMAGE_STD = 0.225


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """B×3×H×W RGB in [0, 1] → zero-centred network input (monodepth2 statistics)."""
    return (image - IMAGE_MEAN) / IMAGE_STD


def check_image(image: torch.Tensor, name: str = "image", min_size: int = 64) -> None:
    """Raise ``ValueError`` unless ``image`` is a float B×3×H×W tensor with H, W ≥ ``min_size``."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"{name} must have shape B×3×H×W, got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {image.dtype}")
    if image.shape[2] < min_size or image.shape[3] < min_size:
        raise ValueError(f"{name} must be at least {min_size}×{min_size} pixels (H×W), got {tuple(image.shape[2:])}")



def encode_triplet(encode, prev: torch.Tensor, cur: torch.Tensor, next: torch.Tensor) -> list[list[torch.Tensor]]:
    """Check three B×3×H×W frames (t−1, t, t+1), encode them as one 3B batch, and split the features back.

    Returns ``[features_prev, features_cur, features_next]``, each the list ``encode`` returns for B frames.
    """
    for name, frame in (("prev", prev), ("cur", cur), ("next", next)):
        check_image(frame, name)
    if not (prev.shape == cur.shape == next.shape):
        raise ValueError(f"prev, cur, next must have the same shape, got {tuple(prev.shape)}, "
                         f"{tuple(cur.shape)}, {tuple(next.shape)}")
    b = cur.shape[0]
    features = encode(torch.cat([prev, cur, next], dim=0))
    return [[f[k * b:(k + 1) * b] for f in features] for k in range(3)]


def pyramid_levels(channels, block, in_channels: int = 3) -> nn.ModuleList:
    """The levels of a feature pyramid: per level ``block(cin, cout, stride=2)`` then ``block(cout, cout)``."""
    levels = []
    cin = in_channels
    for cout in channels:
        levels.append(nn.Sequential(block(cin, cout, stride=2), block(cout, cout)))
        cin = cout
    return nn.ModuleList(levels)


def run_pyramid(levels: nn.ModuleList, x: torch.Tensor, num_levels: int | None = None) -> list[torch.Tensor]:
    """Each level's output, finest first, for the first ``num_levels`` levels (default: all)."""
    features = []
    for level in levels[:num_levels]:
        x = level(x)
        features.append(x)
    return features


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad B×C×H×W on the bottom and right so H and W are multiples of ``multiple``.

    Padding bottom/right keeps pixel (0, 0) in place, so intrinsics are unchanged.
    """
    h, w = image.shape[-2:]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")


def ceil_div(a: int, b: int) -> int:
    """⌈a / b⌉ for a ≥ 0, b > 0, written so that ONNX export traces it right: the TorchScript tracer records sizes
    as tensors and ``//`` as a division toward zero, so ``-(-a // b)`` would export as ⌊a / b⌋."""
    return (a + b - 1) // b


def scaled_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """Size of a feature map at ``1/stride`` of an H×W image after stride-2 3×3 convs (ceil)."""
    return ceil_div(height, stride), ceil_div(width, stride)


class ConvBlock(nn.Module):
    """3×3 convolution (reflection padding) → optional BatchNorm → activation."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, batch_norm: bool = True,
                 activation: nn.Module | None = None):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, bias=not batch_norm)
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.act = activation if activation is not None else nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(self.pad(x))))

    def fold_batch_norm(self) -> None:
        """Inference only: fold the BatchNorm's statistics and affine into the convolution (see :func:`fold_batch_norms`)."""
        if isinstance(self.norm, nn.BatchNorm2d):
            self.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(self.conv, self.norm)
            self.norm = nn.Identity()


def conv_stack(channels: list[int], batch_norm: bool = True, last_activation: bool = True) -> nn.Sequential:
    """Chain of 3×3 ConvBlocks through ``channels`` (first entry = input channels).

    With ``last_activation=False`` the final layer is a bare convolution (a prediction head).
    """
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
        last = i == len(channels) - 2
        if last and not last_activation:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
        else:
            layers.append(ConvBlock(cin, cout, batch_norm=batch_norm))
    return nn.Sequential(*layers)


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def upsample_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinearly upsample a B×2×h×w flow by an integer ``factor``, scaling its magnitude (pixels) to match."""
    return F.interpolate(flow, scale_factor=float(factor), mode="bilinear", align_corners=False) * factor


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """Flow B×2×H×W (pixels) → ``grid_sample`` grid B×H×W×2 (normalised, ``align_corners=True``)."""
    _, _, h, w = flow.shape
    # pixels → normalised units; max(·, 1) keeps 1-pixel-wide maps finite. (arange, not
    # linspace: the ONNX exporter turns linspace into float64, which GridSample rejects.)
    sx = 2.0 / max(w - 1, 1)
    sy = 2.0 / max(h - 1, 1)
    u = (torch.arange(w, device=flow.device, dtype=flow.dtype) * sx - 1.0).view(1, 1, w)
    v = (torch.arange(h, device=flow.device, dtype=flow.dtype) * sy - 1.0).view(1, h, 1)
    du = flow[:, 0] * sx
    dv = flow[:, 1] * sy
    return torch.stack([u + du, v + dv], dim=-1)


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``features`` B×C×H×W with ``flow`` B×2×H×W in pixels.

    out[p] = features[p + flow[p]] (bilinear, zeros outside the image). With the
    flow from the reference frame to ``features``' frame, the output is aligned
    with the reference frame. The output is float32.
    """
    # Sampled in float32 even under bf16 autocast: a bf16 grid is off by up to ~0.3 px at 160 px width.
    grid = flow_grid(flow.float())
    return F.grid_sample(features.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def correlation(reference: torch.Tensor, target: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """Cost volume between two B×C×H×W feature maps: B×(2d+1)²×H×W, d = ``max_displacement`` pixels.

    Channel k = (dy + d)·(2d+1) + (dx + d) holds mean_c reference[c, y, x]·target[c, y+dy, x+dx]
    (PWC-Net correlation, kernel 1, stride 1, normalised by C; zeros outside the
    image). In eager mode (and ONNX export) it is a loop over shifted products of
    a zero-padded target, the fastest eager form on CPU; under ``torch.compile``
    it is the ``unfold`` form, which inductor fuses into one gather-and-reduce
    kernel and compiles in a fraction of the time of the 81-product graph (see
    ``benchmarks/bench_nets.py --correlation``). Both give the same values.
    """
    if torch.compiler.is_compiling():
        return correlation_unfold(reference, target, max_displacement)
    if torch.onnx.is_in_onnx_export():
        return correlation_matmul(reference, target, max_displacement)
    return correlation_shifts(reference, target, max_displacement)


def correlation_shifts(reference: torch.Tensor, target: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """:func:`correlation` as a loop over the (2d+1)² shifted products of a zero-padded target."""
    d = max_displacement
    _, c, h, w = reference.shape
    padded = F.pad(target, (d, d, d, d))
    costs = []
    for dy in range(2 * d + 1):
        for dx in range(2 * d + 1):
            costs.append((reference * padded[:, :, dy:dy + h, dx:dx + w]).mean(dim=1, keepdim=True))
    return torch.cat(costs, dim=1)


def correlation_unfold(reference: torch.Tensor, target: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """:func:`correlation` with ``unfold`` (im2col) of the zero-padded target: B×C×81×H×W products, then a mean."""
    d = max_displacement
    b, c, h, w = reference.shape
    k = 2 * d + 1
    patches = F.unfold(F.pad(target, (d, d, d, d)), kernel_size=k).view(b, c, k * k, h, w)
    return (patches * reference.unsqueeze(2)).mean(dim=1)


CORRELATION_TILE = 16  # columns per tile of :func:`correlation_matmul`


def correlation_matmul(reference: torch.Tensor, target: torch.Tensor, max_displacement: int = 4,
                       tile: int = CORRELATION_TILE) -> torch.Tensor:
    """:func:`correlation` as Gather → MatMul → Gather, the form exported to ONNX (fast in OpenVINO / ONNX Runtime,
    whose kernels run the 81-product shift loop slowly).

    For each row y and vertical shift dy, a tile of ``tile`` reference columns (``tile`` × C) is multiplied with
    the ``tile`` + 2d target columns it can reach in row y + dy (C × (``tile`` + 2d)); the band
    [i, i + dx] of each product is the cost. (``tile`` + 2d)/(2d + 1) times the products of the direct
    form, in large matrix multiplications; the same values up to the summation order.
    """
    d = max_displacement
    k = 2 * d + 1
    b, c, h, w = reference.shape
    tile = min(tile, w)  # a narrower map would only add zero columns
    n_tiles = ceil_div(w, tile)
    wide = n_tiles * tile
    span = tile + 2 * d
    device = reference.device
    # Reference B×C×H×W → B×H×1×tiles×T×C (zero columns up to a whole number of tiles).
    ref = F.pad(reference, (0, wide - w)).reshape(b, c, h, n_tiles, tile).permute(0, 2, 3, 4, 1).unsqueeze(2)
    # Target zero-padded by d (and to whole tiles): row y + dy for every (y, dy), the span of columns of every tile.
    padded = F.pad(target, (d, d + wide - w, d, d))
    rows = (torch.arange(h, device=device).view(h, 1) + torch.arange(k, device=device).view(1, k)).reshape(-1)
    cols = (torch.arange(n_tiles, device=device).view(n_tiles, 1) * tile
            + torch.arange(span, device=device).view(1, span)).reshape(-1)
    windows = padded.index_select(2, rows).index_select(3, cols)             # B×C×(H·k)×(tiles·span)
    windows = windows.reshape(b, c, h, k, n_tiles, span).permute(0, 2, 3, 4, 1, 5)  # B×H×k×tiles×C×span
    products = torch.matmul(ref, windows)                                    # B×H×k×tiles×T×span
    band = (torch.arange(tile, device=device).view(tile, 1) * span
            + torch.arange(tile, device=device).view(tile, 1) + torch.arange(k, device=device).view(1, k)).reshape(-1)
    costs = products.reshape(b, h, k, n_tiles, tile * span).index_select(4, band)  # B×H×k(dy)×tiles×(T·k(dx))
    costs = costs.reshape(b, h, k, n_tiles, tile, k).permute(0, 2, 5, 1, 3, 4)     # B×dy×dx×H×tiles×T
    return costs.reshape(b, k * k, h, wide)[..., :w] / c


# ---------------------------------------------------------------------------------------------
# The authors' TensorFlow conventions (ΩNet's official code, TF 1.8), reproduced exactly so that
# their published weights give their outputs. ``nets.dsnet``, ``nets.camnet``, ``nets.ofnet``
# are built from these; ``omeganet_ros.official_import`` maps their variable names onto them.
# ---------------------------------------------------------------------------------------------

# slim.batch_norm defaults used by the authors' ops.conv2d: epsilon 0.001, decay 0.999 (PyTorch
# momentum = 1 − decay), center=True (β), scale=False (no γ).
TF_BATCH_NORM_EPSILON = 1e-3
TF_BATCH_NORM_MOMENTUM = 1e-3


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """The authors' ``tf.pad(..., "REFLECT")`` on all four sides of B×C×H×W.

    Maps too small to reflect (a side ≤ ``pad``, where TensorFlow fails) are replicate-padded
    instead: an extension for inputs below 128 pixels, never reached at the authors' sizes.
    """
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.pad(x, (pad,) * 4, mode=mode)


class ConvBNReLU(nn.Module):
    """The authors' ``ops.conv2d``: reflection pad, VALID conv without bias, BatchNorm (β only), activation.

    ``activation``: "relu" (their default) or None. ``dilation`` > 1 pads by the dilation,
    as they do. Input/output B×C×H×W; stride 2 gives floor((H + 2p − 3) / 2) + 1 rows.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, activation: str | None = "relu"):
        super().__init__()
        self.pad = dilation if dilation > 1 else 1
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=TF_BATCH_NORM_EPSILON, momentum=TF_BATCH_NORM_MOMENTUM,
                                 affine=False)
        self.beta = nn.Parameter(torch.zeros(out_channels))
        self.relu = activation == "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(reflect_pad(x, self.pad)))
        if self.beta is not None:  # None once folded into the convolution's bias
            x = x + self.beta.view(1, -1, 1, 1).to(x.dtype)
        return F.relu(x) if self.relu else x

    def fold_batch_norm(self) -> None:
        """Inference only: BatchNorm statistics and β become the convolution's weight scale and bias
        (one conv with bias instead of conv, normalise, add β: the same values up to fp32 rounding)."""
        if self.beta is None:
            return
        bn, conv = self.bn, self.conv
        conv.weight, conv.bias = torch.nn.utils.fusion.fuse_conv_bn_weights(
            conv.weight, None, bn.running_mean, bn.running_var, bn.eps, None, self.beta)
        self.bn, self.beta = nn.Identity(), None


def init_like_tensorflow(module: nn.Module) -> nn.Module:
    """Re-initialise ``module`` as the authors' TensorFlow layers start: Glorot-uniform weights, zero biases.

    ``tf.contrib.layers.conv2d`` / slim (the layers of ../shared/reference/omeganet-official) default to
    ``xavier_initializer()`` and ``zeros_initializer()``; PyTorch's default (Kaiming-uniform with a=√5) is
    about √3× smaller for a 3×3 convolution, which leaves OFNet's cost volume too weak to steer the
    decoders at the start of training (issue 13). BatchNorm keeps γ = 1, β = 0. Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm of ``module``'s conv blocks (:class:`ConvBNReLU`, :class:`ConvBlock`) into its
    convolution, in place, for inference: the network then computes its eval-mode outputs with one
    convolution per block (its state dict changes; fold a copy to keep a trainable network). Returns ``module``.
    """
    for block in module.modules():
        if isinstance(block, (ConvBNReLU, ConvBlock)):
            block.fold_batch_norm()
    return module.eval()


class ReflectConv(nn.Conv2d):
    """The authors' ``ops.conv2d`` without a normaliser: reflection pad 1 (also for 1×1 kernels), VALID conv with bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(reflect_pad(x, 1))


def tf_same_padding(size: int, kernel_size: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) along one axis: the extra pixel of an odd total goes after."""
    effective = (kernel_size - 1) * dilation + 1
    total = max((ceil_div(size, stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Module):
    """``slim.conv2d`` with padding "SAME" (zero padding, TensorFlow's asymmetric split), bias, optional leaky ReLU.

    ``negative_slope`` None: no activation (a prediction layer). SelFlow's convs use 0.2.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, negative_slope: float | None = 0.2):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, d = self.conv.kernel_size[0], self.conv.stride[0], self.conv.dilation[0]
        top, bottom = tf_same_padding(x.shape[-2], k, s, d)
        left, right = tf_same_padding(x.shape[-1], k, s, d)
        if top == bottom and left == right:  # stride 1 (odd kernels): the convolution's own zero padding, no copy
            x = F.conv2d(x, self.conv.weight, self.conv.bias, s, (top, left), d)
        else:
            x = self.conv(F.pad(x, (left, right, top, bottom)))
        return x if self.negative_slope is None else F.leaky_relu(x, self.negative_slope)


def _legacy_source_index(out_size: int, in_size: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF-legacy bilinear sampling along one axis: src = dst·in/out; (lower, upper, fraction)."""
    src = torch.arange(out_size, device=device, dtype=torch.float32) * (in_size / out_size)
    lower = src.floor()
    frac = src - lower
    lower = lower.to(torch.int64)
    upper = (lower + 1).clamp(max=in_size - 1)
    return lower, upper, frac


def resize_bilinear_tf_legacy(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``tf.image.resize_bilinear`` / ``tf.compat.v1.image.resize_images`` (align_corners=False, no half-pixel centres).

    B×C×h×w → B×C×H×W with source coordinate dst·in/out (the top-left pixels coincide; the image
    shifts by half an output pixel against ``F.interpolate(align_corners=False)``). Computed in float32.
    """
    out_h, out_w = size
    in_h, in_w = x.shape[-2:]
    x = x.float()
    y0, y1, fy = _legacy_source_index(out_h, in_h, x.device)
    x0, x1, fx = _legacy_source_index(out_w, in_w, x.device)
    fy = fy.view(1, 1, -1, 1)
    rows = x.index_select(2, y0) * (1 - fy) + x.index_select(2, y1) * fy
    fx = fx.view(1, 1, 1, -1)
    return rows.index_select(3, x0) * (1 - fx) + rows.index_select(3, x1) * fx


def resize_flow_align_corners(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """SelFlow's ``flow_resize``: bilinear with align_corners=True, u scaled by W'/W and v by H'/H (not by (W'−1)/(W−1))."""
    h, w = flow.shape[-2:]
    out = F.interpolate(flow.float(), size=size, mode="bilinear", align_corners=True)
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return out * scale


_FIXED_BATCH_EXPORT = False


@contextlib.contextmanager
def fixed_batch_export():
    """While active, ONNX export may specialise on batch 1 (graphs exported at batch 1 that never run another
    batch, as ``omeganet_ros.backends`` exports them); outside it an export stays valid for any batch."""
    global _FIXED_BATCH_EXPORT
    previous, _FIXED_BATCH_EXPORT = _FIXED_BATCH_EXPORT, True
    try:
        yield
    finally:
        _FIXED_BATCH_EXPORT = previous


def warp_tf(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """SelFlow's ``tf_warp``, quirks included: out[p] ≈ features[p + flow[p]], B×C×H×W, flow B×2×H×W pixels.

    Unlike :func:`warp`: the corner indices are ``int(x)`` (truncated toward zero, so negative
    coordinates extrapolate from pixels 0 and 1), clipped to the image, and the bilinear weights
    come from the *clipped* corners (so the last row and column get zero weight even for zero flow).
    """
    b, c, h, w = features.shape
    x = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w) + flow[:, 0].float()
    y = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1) + flow[:, 1].float()
    x0 = x.to(torch.int64)  # a float → int cast truncates toward zero, as tf.cast does
    y0 = y.to(torch.int64)
    x1 = (x0 + 1).clamp(0, w - 1)
    y1 = (y0 + 1).clamp(0, h - 1)
    x0 = x0.clamp(0, w - 1)
    y0 = y0.clamp(0, h - 1)
    x0f, x1f, y0f, y1f = x0.float(), x1.float(), y0.float(), y1.float()
    wa = (x1f - x) * (y1f - y)
    wb = (x1f - x) * (y - y0f)
    wc = (x - x0f) * (y1f - y)
    wd = (x - x0f) * (y - y0f)
    if features.is_contiguous(memory_format=torch.channels_last) and c > 1:
        # NHWC: each sample copies one pixel's C contiguous values, and the output stays channels_last.
        rows = features.float().permute(0, 2, 3, 1).reshape(b, h * w, c)
        batch = torch.arange(b, device=features.device).view(b, 1)

        def gather(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
            return rows[batch, (yi * w + xi).reshape(b, h * w)].view(b, h, w, c).permute(0, 3, 1, 2)
    else:
        flat = features.float().reshape(b, c, h * w)

        def gather(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
            if b == 1 and (_FIXED_BATCH_EXPORT or not torch.onnx.is_in_onnx_export()):
                # one index row serves every channel: an ONNX Gather, not a GatherElements over C copies
                return flat.index_select(2, (yi * w + xi).reshape(h * w)).reshape(b, c, h, w)
            index = (yi * w + xi).reshape(b, 1, h * w).expand(b, c, h * w)
            return flat.gather(2, index).reshape(b, c, h, w)

    return (wa.unsqueeze(1) * gather(y0, x0) + wb.unsqueeze(1) * gather(y1, x0) + wc.unsqueeze(1) * gather(y0, x1)
            + wd.unsqueeze(1) * gather(y1, x1))


def cost_volume(reference: torch.Tensor, target: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """SelFlow's cost volume: B×(2d+1)²×H×W, channel (dy + d)·(2d+1) + (dx + d) = Σ_c r̂[c, y, x]·t̂[c, y+dy, x+dx].

    r̂, t̂ are the features L2-normalised over channels (``tf.nn.l2_normalize``: x / √max(Σx², 1e-12));
    a channel *sum* (not a mean), zeros outside the image (``extract_image_patches`` "SAME").
    """
    channels = reference.shape[1]
    reference = reference.float() * torch.rsqrt(reference.float().pow(2).sum(1, keepdim=True).clamp(min=1e-12))
    target = target.float() * torch.rsqrt(target.float().pow(2).sum(1, keepdim=True).clamp(min=1e-12))
    return correlation(reference, target, max_displacement) * channels
