"""The node's outputs for a training dataset's triplet: what validation and stage 4 measure.

Both run :func:`omeganet_ros.inference.predict_frames` — the inference path of
:class:`~omeganet_ros.engine.SceneEngine` — on the triplet's frames at their own size, so metrics and the
calibrated motion threshold τ describe what the node publishes (fp32, relative depth).
"""
from __future__ import annotations

import torch.nn as nn

from ..inference import SceneTensors, predict_frames


def predict_triplet(nets: dict[str, nn.Module], dataset, index: int, *, device="cpu",
                    compute_flow: bool = True) -> SceneTensors | None:
    """Outputs (batch of one, at the frames' own size) for the centre frame of ``dataset``'s item ``index``.

    ``dataset``: a :class:`~omeganet_ros.train.data.TripletDataset` (its frames are resized to its network
    size the engine's way, its sequence's K used where known). None when a frame cannot be read.
    """
    try:
        seq, _, frames = dataset.load_frames(index)
    except OSError:
        return None
    mid = len(frames) // 2  # the triplet (t−1, t, t+1) around the centre, whatever context the dataset loads
    return predict_frames(nets, frames[mid - 1:mid + 2], (dataset.width, dataset.height), seq.K, device=device,
                          compute_flow=compute_flow)
