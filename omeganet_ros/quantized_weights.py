"""Compact weight storage for checkpoints: integer codes with float16 scales, turned back into float at load.

Why: the Moreau et al. reference model is two ResNet18s (32.6 M parameters: 65 MB in float16), too big to
ship in the repository; the architecture is the poster's and stays whole. Only the *storage* shrinks:

* ``int8``: each output channel (a kernel row, flattened to ``in·kh·kw`` values) gets one scale;
  codes −127…127, one byte per weight (half of float16).
* ``int4``: each group of ``group`` consecutive values of a row gets one scale; codes −7…7, two per byte
  (4 + 16/``group`` bits per weight: 4.5 at the default group of 32).

Symmetric, no zero point. Each scale is ``ratio · max|w| / qmax`` with the ratio among :data:`CLIP_RATIOS`
that gives the smallest squared error for its row or group (clipping a few outliers buys finer steps for
the rest). Only large weight tensors (≥ :data:`MIN_ELEMENTS` values, at least 2-D: convolution and linear
kernels) are coded; biases, BatchNorm parameters and statistics and small tensors stay float16.

The codes live in the checkpoint's ordinary ``state_dicts`` (int8 / uint8 tensors) and their scales and
shapes in its ``quantized`` field, so the file is still a plain dict of tensors, numbers, strings and lists
(``torch.load(weights_only=True)``), and :func:`omeganet_ros.checkpoint.load_checkpoint` returns float32
state dicts as for any checkpoint: the networks run in float as before, with the coded values.
"""
from __future__ import annotations

import math

import torch

FORMAT = "omeganet_ros.quantized/1"
SCHEMES = {"int8": (8, 0), "int4": (4, 32)}  # name → (bits, default group; 0 = one scale per output channel)
MIN_ELEMENTS = 4096
CLIP_RATIOS = tuple(1.0 - 0.05 * i for i in range(11))  # 1.0 … 0.5 of max|w|


def _rows(weight: torch.Tensor, group: int) -> torch.Tensor:
    """out × G × g float32 view of a kernel: rows of ``in·kh·kw`` values cut into groups of ``group`` (the last
    zero-padded); G = 1, g = row length when ``group`` is 0."""
    rows = weight.detach().float().reshape(weight.shape[0], -1)
    length = rows.shape[1]
    if group <= 0 or group >= length:
        return rows.unsqueeze(1)
    padded = math.ceil(length / group) * group
    return torch.nn.functional.pad(rows, (0, padded - length)).reshape(rows.shape[0], -1, group)


def quantize_tensor(weight: torch.Tensor, bits: int, group: int) -> tuple[torch.Tensor, dict]:
    """(codes, spec) of one kernel: int8 codes (``bits`` 8) or uint8 with two 4-bit codes per byte (``bits`` 4),
    and ``{"bits", "group", "shape", "scales"}`` (scales: out × G float16)."""
    if bits not in (4, 8):
        raise ValueError(f"weights can be stored with 8 or 4 bits, not {bits}")
    qmax = 2 ** (bits - 1) - 1
    blocks = _rows(weight, group)
    peak = blocks.abs().amax(dim=-1, keepdim=True)
    best_error = best_scale = None
    for ratio in CLIP_RATIOS:
        scale = (peak * ratio / qmax).half().float()          # the scale as stored
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        error = ((torch.clamp(torch.round(blocks / scale), -qmax, qmax) * scale - blocks) ** 2).sum(-1, keepdim=True)
        if best_error is None:
            best_error, best_scale = error, scale
        else:
            better = error < best_error
            best_error, best_scale = torch.where(better, error, best_error), torch.where(better, scale, best_scale)
    codes = torch.clamp(torch.round(blocks / best_scale), -qmax, qmax).to(torch.int8).reshape(blocks.shape[0], -1)
    if bits == 4:
        nibbles = (codes.reshape(-1).to(torch.int16) + 8).to(torch.uint8)   # 1 … 15
        if nibbles.numel() % 2:
            nibbles = torch.cat([nibbles, nibbles.new_full((1,), 8)])
        codes = nibbles[0::2] | (nibbles[1::2] << 4)
    spec = {"bits": bits, "group": int(blocks.shape[-1]) if group > 0 else 0, "shape": list(weight.shape),
            "scales": best_scale.squeeze(-1).half().contiguous()}
    return codes.contiguous(), spec


def dequantize_tensor(codes: torch.Tensor, spec: dict) -> torch.Tensor:
    """The float32 kernel of :func:`quantize_tensor`'s ``(codes, spec)``; ValueError when they do not fit."""
    bits, group, shape, scales = spec.get("bits"), spec.get("group"), spec.get("shape"), spec.get("scales")
    if bits not in (4, 8) or not isinstance(group, int) or not isinstance(shape, list) or not torch.is_tensor(scales):
        raise ValueError(f"malformed quantization record (bits {bits!r}, group {group!r}, shape {shape!r})")
    if not bool(torch.isfinite(scales.float()).all()):
        raise ValueError("quantization scales hold NaN or Inf values")
    out, length = shape[0], math.prod(shape[1:])
    groups = 1 if group == 0 else math.ceil(length / group)
    width = length if group == 0 else group
    count = out * groups * width
    if tuple(scales.shape) != (out, groups):
        raise ValueError(f"scales of shape {tuple(scales.shape)} for {out} rows × {groups} groups")
    if bits == 8:
        if codes.dtype != torch.int8 or codes.numel() != count:
            raise ValueError(f"{codes.numel()} {codes.dtype} codes for {count} 8-bit weights")
        values = codes.float()
    else:
        if codes.dtype != torch.uint8 or codes.numel() != (count + 1) // 2:
            raise ValueError(f"{codes.numel()} {codes.dtype} bytes for {count} 4-bit weights")
        values = torch.stack([codes & 0xF, codes >> 4], dim=1).reshape(-1)[:count].float() - 8.0
    blocks = values.reshape(out, groups, width) * scales.float().unsqueeze(-1)
    return blocks.reshape(out, -1)[:, :length].reshape(shape)


def quantize_state_dicts(state_dicts: dict, scheme: str = "int8", group: int | None = None) -> tuple[dict, dict]:
    """(state dicts with coded kernels and every other float tensor in float16, the ``quantized`` record).

    ``scheme``: a key of :data:`SCHEMES`; ``group``: values per scale for int4 (default 32)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weight storage {scheme!r}; expected one of {sorted(SCHEMES)}")
    bits, default_group = SCHEMES[scheme]
    group = default_group if group is None else int(group)
    coded, record = {}, {}
    for name, state in state_dicts.items():
        coded[name], record[name] = {}, {}
        for key, value in state.items():
            if value.is_floating_point() and value.dim() >= 2 and value.numel() >= MIN_ELEMENTS:
                coded[name][key], record[name][key] = quantize_tensor(value, bits, group)
            else:
                coded[name][key] = value.half() if value.is_floating_point() else value
    return coded, {"format": FORMAT, "scheme": scheme, "group": group, "tensors": record}


def dequantize_state_dicts(state_dicts: dict, quantized: dict) -> dict:
    """State dicts with every coded kernel of the ``quantized`` record back in float32 (others as they are).
    Raises ValueError naming the network and key of a record that does not fit its codes."""
    if not isinstance(quantized, dict) or quantized.get("format") != FORMAT or not isinstance(quantized.get("tensors"), dict):
        found = quantized.get("format") if isinstance(quantized, dict) else type(quantized).__name__
        raise ValueError(f"field 'quantized' is not an {FORMAT} record (format: {found!r})")
    out = {name: dict(state) for name, state in state_dicts.items()}
    for name, specs in quantized["tensors"].items():
        for key, spec in specs.items():
            if name not in out or key not in out[name]:
                raise ValueError(f"field 'quantized' names {name}.{key}, which has no codes in state_dicts")
            try:
                out[name][key] = dequantize_tensor(out[name][key], spec)
            except ValueError as exc:
                raise ValueError(f"state_dicts.{name}.{key}: {exc}") from exc
    return out
