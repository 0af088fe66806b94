"""The one checkpoint format of omeganet_ros, and its safe loading.

A checkpoint is a plain dict written with ``torch.save``::

    {
      "format": "omeganet_ros.checkpoint/2",
      "architecture": {"dsnet": {"class": "DSNet", "kwargs": {...}}, ...},  # kwargs: the network's config()
      "input_size": [W, H],                 # network input size it was trained at
      "classes": ["road", ..., "bicycle"],  # trainId order of the semantic head
      "provenance": {...},                  # free: config, data, git commit, step, metrics
      "state_dicts": {"dsnet": {...}, "camnet": {...}, "ofnet": {...}},
      "extra": {...},                       # optional, e.g. optimizer state for resuming
      "quantized": {...}                    # optional: kernels stored as integer codes (quantized_weights.py)
    }

It holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: a model file cannot run code.

Format 1 files were written before the networks followed the authors' code: their class names
``DSNet``, ``CamNet``, ``OFNet`` meant today's ``LegacyDSNet``, ``LegacyCamNet``, ``LegacyOFNet``,
and :func:`load_checkpoint` renames them so (see ``LEGACY_CLASS_NAMES``).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .classes import CLASS_NAMES

FORMAT = "omeganet_ros.checkpoint/2"
FORMAT_1 = "omeganet_ros.checkpoint/1"
READABLE_FORMATS = (FORMAT_1, FORMAT)
# Format 1 class names → the classes that now hold those networks.
LEGACY_CLASS_NAMES = {"DSNet": "LegacyDSNet", "CamNet": "LegacyCamNet", "OFNet": "LegacyOFNet"}
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 32, 8192  # pixels; a network input beyond these is a corrupt field
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "models" / "omeganet_synth.pt"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not match the networks; the message names the file."""


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring for the fields)."""

    path: Path | None
    architecture: dict
    input_size: tuple[int, int]  # (W, H)
    classes: list[str]
    provenance: dict = field(default_factory=dict)
    state_dicts: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def default_checkpoint_path() -> Path | None:
    """The reference checkpoint shipped with the package, or None while none has been trained."""
    return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None


def describe_architecture(networks: dict[str, nn.Module]) -> dict:
    """{name: {"class": class name, "kwargs": the network's own record of its constructor arguments}}.

    Every network declares its architecture (``omeganet_ros.nets.config.ConfiguredNet.config``); a module
    without that record cannot be saved (a ``TypeError`` names it), since it could not be built back.
    """
    from .nets.config import ConfiguredNet  # here: importing the nets package is heavy

    described = {}
    for name, net in networks.items():
        if not isinstance(net, ConfiguredNet):
            raise TypeError(f"network {name!r} ({type(net).__name__}) does not record its architecture: "
                            "derive it from omeganet_ros.nets.config.ConfiguredNet (unwrap DDP / compiled modules)")
        described[name] = {"class": type(net).__name__, "kwargs": net.config()}
    return described


def save_checkpoint(path, networks: dict[str, nn.Module], *, input_size, provenance: dict | None = None,
                    extra: dict | None = None, classes=CLASS_NAMES, weight_storage: str | None = None) -> Path:
    """Write ``networks`` (name → module) to ``path`` atomically (temporary file, then rename).

    ``input_size`` is (W, H) in pixels; ``provenance`` a free dict of plain
    values (config, data, git commit, step, metrics); ``extra`` optional plain
    state (e.g. an optimizer state dict) kept alongside. ``weight_storage``
    "int8" / "int4": kernels stored as integer codes (``quantized_weights.py``).
    """
    path = Path(path)
    if len(input_size) != 2:
        raise ValueError(f"input_size must be (W, H), got {input_size!r}")
    payload = {
        "format": FORMAT,
        "architecture": describe_architecture(networks),
        "input_size": [int(input_size[0]), int(input_size[1])],
        "classes": list(classes),
        "provenance": dict(provenance or {}),
        "state_dicts": {name: {k: v.detach().cpu() for k, v in net.state_dict().items()} for name, net in networks.items()},
        "extra": dict(extra or {}),
    }
    if weight_storage is not None:
        from .quantized_weights import quantize_state_dicts

        payload["state_dicts"], payload["quantized"] = quantize_state_dicts(payload["state_dicts"], weight_storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path, map_location="cpu") -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``); fp16/bf16 tensors come back as fp32.

    Raises :class:`CheckpointError` (a ``ValueError``) naming the file when it
    is missing, corrupt, or not in this format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip, unsafe globals
        raise CheckpointError(f"checkpoint {path}: cannot be read safely ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path}: not an {' or '.join(READABLE_FORMATS)} file (format field: {found!r})")
    for key in ("architecture", "input_size", "state_dicts"):
        if key not in payload:
            raise CheckpointError(f"checkpoint {path}: missing field {key!r}")
    _check_fields(path, payload)
    architecture = dict(payload["architecture"])
    if payload["format"] == FORMAT_1:
        architecture = {name: {**spec, "class": LEGACY_CLASS_NAMES.get(spec["class"], spec["class"])}
                        for name, spec in architecture.items()}
    if "quantized" in payload:  # integer-coded kernels (quantized_weights.py) → float
        from .quantized_weights import dequantize_state_dicts

        try:
            payload["state_dicts"] = dequantize_state_dicts(payload["state_dicts"], payload["quantized"])
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    state_dicts = {}
    for name, state in payload["state_dicts"].items():
        state_dicts[name] = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}
    size = payload["input_size"]
    return Checkpoint(
        path=path,
        architecture=architecture,
        input_size=(int(size[0]), int(size[1])),
        classes=list(payload.get("classes", [])),
        provenance=dict(payload.get("provenance", {})),
        state_dicts=state_dicts,
        extra=dict(payload.get("extra", {})),
    )


def _check_fields(path: Path, payload: dict) -> None:
    """Raise CheckpointError naming the file and field for a malformed field or non-finite weights."""
    def fail(field: str, problem: str):
        raise CheckpointError(f"checkpoint {path}: field {field!r} {problem}")

    size = payload["input_size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                      for v in size)):
        fail("input_size", f"must be [W, H] integers, got {size!r}")
    if not all(MIN_INPUT_SIDE <= v <= MAX_INPUT_SIDE for v in size):
        fail("input_size", f"must be within {MIN_INPUT_SIDE}..{MAX_INPUT_SIDE} pixels per side, got {list(size)}")
    architecture = payload["architecture"]
    if not isinstance(architecture, dict):
        fail("architecture", f"must be a dict of networks, got {type(architecture).__name__}")
    for name, spec in architecture.items():
        if not (isinstance(spec, dict) and isinstance(spec.get("class"), str) and isinstance(spec.get("kwargs", {}), dict)):
            fail(f"architecture.{name}", f"must be {{'class': str, 'kwargs': dict}}, got {spec!r:.80}")
    for key, kind in (("classes", list), ("provenance", dict), ("extra", dict)):
        if key in payload and not isinstance(payload[key], kind):
            fail(key, f"must be a {kind.__name__}, got {type(payload[key]).__name__}")
    if not all(isinstance(c, str) for c in payload.get("classes", [])):
        fail("classes", "must be a list of class names (strings)")
    state_dicts = payload["state_dicts"]
    if not isinstance(state_dicts, dict):
        fail("state_dicts", f"must be a dict of networks, got {type(state_dicts).__name__}")
    for name, state in state_dicts.items():
        if not isinstance(state, dict):
            fail(f"state_dicts.{name}", f"must be a dict of tensors, got {type(state).__name__}")
        for key, value in state.items():
            if not torch.is_tensor(value):
                fail(f"state_dicts.{name}.{key}", f"must be a tensor, got {type(value).__name__}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                fail(f"state_dicts.{name}.{key}", "holds NaN or Inf values (a diverged or corrupted training run?)")


def load_state_checked(module: nn.Module, state: dict, *, where: str) -> None:
    """Load ``state`` into ``module`` strictly, raising a CheckpointError listing missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs network {tuple(own[k].shape)}"
                  for k in own if k in state and torch.is_tensor(state[k]) and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append("shape mismatch " + "; ".join(mismatched[:5]) + (" …" if len(mismatched) > 5 else ""))
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        raise CheckpointError(f"{where}: " + ", ".join(parts))
    module.load_state_dict(state, strict=True)


def build_networks_from_checkpoint(ckpt: Checkpoint, names=None) -> dict[str, nn.Module]:
    """Instantiate the networks a checkpoint describes (classes from ``omeganet_ros.nets``) and load their weights.

    ``names`` restricts which networks are built (default: all in the file).
    Raises :class:`CheckpointError` on an unknown class, bad kwargs or a shape mismatch.
    """
    from . import nets  # imported here: nets is heavy and the format itself does not need it

    where = f"checkpoint {ckpt.path}" if ckpt.path else "checkpoint"
    names = list(ckpt.architecture) if names is None else list(names)
    built = {}
    for name in names:
        if name not in ckpt.architecture:
            raise CheckpointError(f"{where}: no network {name!r} (has {sorted(ckpt.architecture)})")
        spec = ckpt.architecture[name]
        cls_name = spec.get("class") if isinstance(spec, dict) else None
        cls = getattr(nets, cls_name, None) if isinstance(cls_name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise CheckpointError(f"{where}: network {name!r} has an unknown architecture {cls_name!r}")
        try:
            module = cls(**{**getattr(cls, "defaults_of_older_records", {}), **spec.get("kwargs", {})})
        except TypeError as exc:
            raise CheckpointError(f"{where}: network {name!r} ({cls_name}) cannot be built with {spec.get('kwargs')}: {exc}") from exc
        if name not in ckpt.state_dicts:
            raise CheckpointError(f"{where}: no weights for network {name!r}")
        load_state_checked(module, ckpt.state_dicts[name], where=f"{where}, network {name!r} ({cls_name})")
        built[name] = module.eval()
    return built
