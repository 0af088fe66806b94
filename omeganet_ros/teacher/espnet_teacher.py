"""The ESPNet proxy-label teacher: Cityscapes trainIds and a confidence per pixel from any RGB frame.

Weights: the authors' Cityscapes ESPNet (p = 2, q = 8; ``sacmehta/ESPNet``,
``pretrained/decoder/espnet_p_2_q_8.pth``, MIT licence) ships with the package
as ``omeganet_ros/models/espnet_cityscapes_p2_q8.pth``. Those are 2018,
pre-zip ("legacy") PyTorch files saved from CUDA tensors; ``torch.load`` reads
them with ``weights_only=True`` (its restricted unpickler understands the legacy
format too, so a file cannot run code) and ``map_location="cpu"`` (without it
the CUDA storages fail to load on a CPU machine).

Input normalisation as the authors trained it (``train/loadData.py``,
``Transforms.py``): the image in **BGR** order (OpenCV), minus the Cityscapes
training-set channel mean, divided by its standard deviation, then divided by
255, resized bilinearly (1024×512 for Cityscapes' 2:1 frames at training and
test time).
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import CheckpointError, load_state_checked
from ..classes import IGNORE_ID, NUM_CLASSES
from .espnet import ESPNet, ESPNetC

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "espnet_cityscapes_p2_q8.pth"
# Cityscapes training-set statistics in BGR order, 0–255 (the authors' city.p, printed by test/VisualizeResults.py).
ESPNET_MEAN_BGR = (72.3923111, 82.90893555, 73.15840149)
ESPNET_STD_BGR = (45.3192215, 46.15289307, 44.91483307)
ESPNET_VOID_CLASS = 19  # the 20th output: "void" (unlabelled pixels at training) → trainId 255
TRAINED_WIDTH = 1024  # the authors' training and test width (Cityscapes frames at 1024×512)
# Cityscapes' left camera focal length at 2048×1024 (its camera/*.json), so fx = 1131 px at 1024×512:
# the scale at which the network learnt what a car or a person looks like.
CITYSCAPES_FX = 2262.52
# Bump when the preprocessing or post-processing changes: cached labels made before become invalid.
LABELLER_VERSION = 1


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_espnet(path) -> ESPNet | ESPNetC:
    """An ESPNet or ESPNet-C (chosen by the file's keys, with its classes, p and q) loaded from ``path``, in eval mode.

    Raises :class:`~omeganet_ros.checkpoint.CheckpointError` naming the file when it
    is missing, corrupt, unsafe (a pickle that would run code), not a state dict, or
    does not match the network key for key.
    """
    path = Path(path)
    where = f"ESPNet weights {path}"
    if not path.is_file():
        raise CheckpointError(f"{where}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unsafe globals, truncated or corrupt pickles, bad zip archives
        raise CheckpointError(f"{where}: cannot be read safely ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise CheckpointError(f"{where}: not a state dict of tensors (got {type(state).__name__})")
    prefix = "encoder." if any(k.startswith("encoder.") for k in state) else ""
    classifier = state.get(prefix + "classifier.conv.weight")
    if classifier is None:
        raise CheckpointError(f"{where}: no {prefix}classifier.conv.weight: not an ESPNet state dict")

    def blocks(level: str) -> int:
        start = f"{prefix}{level}."
        return len({k[len(start):].split(".")[0] for k in state if k.startswith(start)})

    kwargs = {"classes": int(classifier.shape[0]), "p": blocks("level2"), "q": blocks("level3")}
    net = (ESPNet if prefix else ESPNetC)(**kwargs)
    # BatchNorm's num_batches_tracked buffer appeared in PyTorch 0.4.1, after these files were written;
    # it only matters when training with momentum=None, so it is filled in rather than required.
    counters = {k: v for k, v in net.state_dict().items() if k.endswith("num_batches_tracked") and k not in state}
    load_state_checked(net, {**counters, **state}, where=f"{where} ({type(net).__name__} {kwargs})")
    return net.eval()


def network_size(width: int, height: int, input_width: int = TRAINED_WIDTH,
                 focal_px: float | None = None) -> tuple[int, int]:
    """(W, H) of the network input for a W×H frame, the frame's aspect ratio kept, multiples of 8.

    Without ``focal_px``: ``input_width`` wide. With the frame's focal length (pixels), the frame is
    scaled so that objects appear at the size they had in training (fx = 1131 px at 1024 wide) — e.g.
    KITTI's 1242×375, fx = 721, goes in at 1944×584 — times ``input_width`` / 1024, within ½–2× ``input_width``.
    """
    target = input_width
    if focal_px is not None and focal_px > 0:
        target = width * CITYSCAPES_FX * TRAINED_WIDTH / 2048 / focal_px * input_width / TRAINED_WIDTH
        target = min(max(target, input_width / 2), input_width * 2)
    net_w = max(8, int(round(target / 8)) * 8)
    net_h = max(8, int(round(height * net_w / width / 8)) * 8)
    return net_w, net_h


class ESPNetTeacher:
    """Proxy semantic labels from the Cityscapes ESPNet.

    ``weights``: an ESPNet state-dict file (default: the bundled Cityscapes p=2, q=8
    model); ``input_width``: network input width in pixels (default 1024, as trained;
    the height follows the frame's aspect ratio); ``device``: "cpu", "cuda" or "auto".

    * :meth:`labels` — one H×W×3 uint8 RGB frame → (H×W uint8 trainIds, 255 = void;
      H×W float32 confidence = the softmax probability of the chosen class).
    * :meth:`predict` — B×3×H×W RGB in [0, 1] → (B×H×W int64 trainIds, B×H×W float32 confidence).
    * ``teacher(images)`` — the trainer's :class:`SemanticTeacher` call: trainIds only.
    * :attr:`fingerprint` — identifies weights + preprocessing, for label caches.
    """

    name = "espnet"

    def __init__(self, weights=None, *, input_width: int = TRAINED_WIDTH, device: str = "cpu"):
        self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
        self.net = load_espnet(self.weights)
        if not isinstance(self.net, ESPNet):
            raise CheckpointError(f"ESPNet weights {self.weights}: an ESPNet-C encoder (1/8-resolution output); "
                                  "the teacher needs the full ESPNet (a decoder/ file)")
        if self.net.classes != NUM_CLASSES + 1:
            raise CheckpointError(f"ESPNet weights {self.weights}: {self.net.classes} classes; the teacher needs the "
                                  f"Cityscapes model's {NUM_CLASSES + 1} (trainIds 0–18 + void)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.net.to(self.device, memory_format=torch.channels_last)  # 1.3–1.6× faster on CPU, same outputs
        self.input_width = int(input_width)
        self.weights_sha256 = file_sha256(self.weights)
        self.fingerprint = hashlib.sha256(
            f"espnet/{LABELLER_VERSION}/{self.weights_sha256}/{self.input_width}".encode()).hexdigest()
        self._mean = torch.tensor(ESPNET_MEAN_BGR, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(ESPNET_STD_BGR, device=self.device).view(1, 3, 1, 1)

    def describe(self) -> dict:
        return {"teacher": self.name, "weights": str(self.weights), "weights_sha256": self.weights_sha256,
                "input_width": self.input_width, "fingerprint": self.fingerprint,
                "architecture": {"p": self.net.p, "q": self.net.q, "classes": self.net.classes}}

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """B×3×H×W RGB in [0, 1] → the network's input (BGR, Cityscapes mean/std, /255, as trained)."""
        bgr = images.flip(1) * 255.0
        return (bgr - self._mean) / self._std / 255.0

    @torch.no_grad()
    def predict(self, images: torch.Tensor, focal_px: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """B×3×H×W RGB in [0, 1] → (B×H×W int64 trainIds with 255 = void, B×H×W float32 confidence in [0, 1]).

        ``focal_px``: the frames' horizontal focal length in pixels, when known (see :func:`network_size`).
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"teacher input must be B×3×H×W RGB, got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        net_w, net_h = network_size(width, height, self.input_width, focal_px)
        x = images.to(self.device, torch.float32)
        if (net_w, net_h) != (width, height):
            x = F.interpolate(x, size=(net_h, net_w), mode="bilinear", align_corners=False)
        logits = self.net(self.normalise(x).contiguous(memory_format=torch.channels_last))
        if width * height <= net_w * net_h and (net_w, net_h) != (width, height):
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        confidence, labels = logits.softmax(1).max(1)
        if labels.shape[-2:] != (height, width):
            # A larger frame is labelled at the network's resolution, then resized: 20-channel logits at
            # 2048×1024 cost as much as the network itself (0.67 s measured) for the same mIoU (±0.001).
            labels = F.interpolate(labels[:, None].float(), size=(height, width), mode="nearest")[:, 0].long()
            confidence = F.interpolate(confidence[:, None], size=(height, width), mode="bilinear",
                                       align_corners=False)[:, 0]
        labels = torch.where(labels == ESPNET_VOID_CLASS, torch.full_like(labels, IGNORE_ID), labels)
        return labels, confidence.float()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.predict(images)[0].to(images.device)

    def labels(self, image: np.ndarray, focal_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """H×W×3 uint8 RGB (focal length ``focal_px`` when known) → (H×W uint8 trainIds, 255 = void; H×W float32 confidence)."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"teacher input must be an H×W×3 uint8 RGB image, got "
                             f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)
        labels, confidence = self.predict(tensor, focal_px)
        return labels[0].to(torch.uint8).cpu().numpy(), confidence[0].cpu().numpy()


@functools.lru_cache(maxsize=4)
def load_teacher(name: str = "espnet", device: str = "auto", input_width: int = TRAINED_WIDTH) -> ESPNetTeacher:
    """A teacher by name, loaded once per process: ``espnet`` (the bundled model) or a path to ESPNet weights."""
    if name in ("", "espnet"):
        return ESPNetTeacher(device=device, input_width=input_width)
    if Path(name).suffix in (".pth", ".pt") or Path(name).is_file():
        return ESPNetTeacher(name, device=device, input_width=input_width)
    raise ValueError(f"unknown semantic teacher {name!r}: 'espnet' or the path of an ESPNet weights file")
