"""The bundled model reacts to its input: a collapsed network (one pose, one mean flow, one depth) fails here.

Issue 13: a model that answers every input with the same ego-motion or flow cannot pass these, whatever
its average error. Inputs are unseen synthetic frames (seed 201; the reference model trained on seeds
1–3) and a textured image shifted by a known amount.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from omeganet_ros.checkpoint import build_networks_from_checkpoint, default_checkpoint_path, load_checkpoint
from omeganet_ros.classes import DYNAMIC_TRAIN_IDS
from omeganet_ros.nets import depth_from_disp
from omeganet_ros.synth import iterate_frames

# OMEGANET_SENSITIVITY_CHECKPOINT: run the same checks on another checkpoint (e.g. a training run's last.pt).
CHECKPOINT = Path(os.environ.get("OMEGANET_SENSITIVITY_CHECKPOINT", "") or (default_checkpoint_path() or ""))
pytestmark = pytest.mark.skipif(not CHECKPOINT.is_file(), reason="no bundled checkpoint (omeganet_ros/models)")


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    ckpt = load_checkpoint(CHECKPOINT)
    nets = build_networks_from_checkpoint(ckpt, ["dsnet", "camnet", "ofnet"])
    for net in nets.values():
        net.eval()
    return nets, tuple(ckpt.input_size)


@pytest.fixture(scope="module")
def street(model):
    """30 frames of an unseen street at the model's size: images 1×3×H×W in [0, 1], depth, camera poses."""
    _, (w, h) = model
    frames = list(iterate_frames(frames=30, seed=201, size=(w, h)))
    images = [torch.from_numpy(f["image"]).permute(2, 0, 1)[None].float() / 255.0 for f in frames]
    return images, [f["depth"] for f in frames], [f["pose"] for f in frames]


def _yaw(camnet, prev, cur, nxt) -> float:
    """CamNet's rotation about the camera's y axis (radians) from cur to next."""
    with torch.no_grad():
        return float(camnet(prev, cur, nxt)["motion"][0, 1, 4])


def _strongest_turn(model, street):
    """(prev, cur, next) around the strongest turn of the street and the true yaw cur → next (radians)."""
    images, _, poses = street
    true_yaws = [Rotation.from_matrix((np.linalg.inv(poses[i]) @ poses[i + 1])[:3, :3]).as_rotvec()[1]
                 for i in range(1, len(poses) - 1)]
    i = 1 + int(np.argmax(np.abs(true_yaws)))
    return (images[i - 1], images[i], images[i + 1]), true_yaws[i - 1], true_yaws


def test_camnet_yaw_follows_the_camera_and_flips_with_a_mirrored_triplet(model, street):
    nets, _ = model
    (prev, cur, nxt), true_yaw, true_yaws = _strongest_turn(model, street)
    camnet = nets["camnet"]
    forward = _yaw(camnet, prev, cur, nxt)
    assert np.sign(forward) == np.sign(true_yaw), (forward, true_yaw)
    mirrored = _yaw(camnet, prev.flip(-1), cur.flip(-1), nxt.flip(-1))
    assert np.sign(mirrored) == -np.sign(forward), (forward, mirrored)
    images = street[0]
    predicted = [_yaw(camnet, images[k - 1], images[k], images[k + 1]) for k in range(1, len(images) - 1)]
    assert np.corrcoef(predicted, true_yaws)[0, 1] > 0.5  # a constant output has no correlation


# Measured on the bundled checkpoint (issue 13, open): its CamNet reads the motion from the appearance of the
# frames more than from their change — the still triplet (t, t, t) gives the moving triplet's yaw and forward
# translation, and reversing the triplet does not flip the yaw. strict: these fail the suite once a model passes.
CAMNET_READS_APPEARANCE = "bundled CamNet: motion from one frame's appearance, not from the frames' change (issue 13)"


@pytest.mark.xfail(strict=True, reason=CAMNET_READS_APPEARANCE)
def test_camnet_yaw_flips_with_a_reversed_triplet_and_vanishes_on_a_still_one(model, street):
    nets, _ = model
    (prev, cur, nxt), _, _ = _strongest_turn(model, street)
    camnet = nets["camnet"]
    forward = _yaw(camnet, prev, cur, nxt)
    reversed_ = _yaw(camnet, nxt, cur, prev)
    static = _yaw(camnet, cur, cur, cur)
    assert np.sign(reversed_) == -np.sign(forward), (forward, reversed_)
    assert abs(static) < 0.25 * abs(forward), (forward, static)


@pytest.mark.xfail(strict=True, reason=CAMNET_READS_APPEARANCE)
def test_camnet_sees_no_translation_in_a_still_triplet(model, street):
    nets, _ = model
    images = street[0]
    with torch.no_grad():
        moving = nets["camnet"](images[9], images[10], images[11])["motion"][0, 1, :3].norm()
        still = nets["camnet"](images[10], images[10], images[10])["motion"][0, 1, :3].norm()
    assert still < 0.25 * moving, (float(still), float(moving))


def test_ofnet_returns_a_known_translation(model, street):
    nets, (w, h) = model
    shift = 3  # pixels per frame, to the right
    wide = street[0][5][..., :, :]
    texture = torch.nn.functional.interpolate(wide, size=(h, w + 4 * shift), mode="bilinear", align_corners=False)
    # frame k shows the texture moved right by k·shift: cur(u) = next(u + shift), flow cur → next = +shift
    prev, cur, nxt = (texture[..., 2 * shift - k * shift: 2 * shift - k * shift + w] for k in (-1, 0, 1))
    with torch.no_grad():
        flow = nets["ofnet"](prev, cur, nxt, backward=False)["flow_fw"][0][0]
    interior = flow[:, 8:-8, 8 + shift:-8 - shift]
    u, v = interior[0], interior[1]
    epe = torch.sqrt((u - shift) ** 2 + v ** 2).mean()
    assert epe < 0.5 * shift, f"EPE {float(epe):.2f} px against a zero-flow EPE of {shift}"
    assert abs(float(u.median()) - shift) < 1.0


def test_depth_puts_near_things_nearer_than_far_ones(model, street):
    """On the static scene (road, buildings, vegetation…): objects moving with the camera are excluded — monocular
    self-supervision cannot see their depth (the car ahead at the camera's speed), issue 17's subject."""
    nets, _ = model
    images, depths, _ = street
    semantics = [f["semantic"] for f in iterate_frames(frames=30, seed=201, size=tuple(model[1]))]
    for k in (3, 12, 21):
        with torch.no_grad():
            disp = nets["dsnet"](images[k])["disp_full"]
            pred = depth_from_disp(nets["dsnet"], disp)[0, 0].numpy()
        gt = depths[k]
        valid = (gt > 0) & np.isfinite(gt) & (gt < 80) & ~np.isin(semantics[k], list(DYNAMIC_TRAIN_IDS))
        near = valid & (gt < np.quantile(gt[valid], 0.25))
        far = valid & (gt > np.quantile(gt[valid], 0.75))
        ratio = np.median(pred[near]) / np.median(pred[far])
        rank = np.corrcoef(np.argsort(np.argsort(pred[valid])), np.argsort(np.argsort(gt[valid])))[0, 1]
        assert rank > 0.8, f"frame {k}: rank correlation of depth with the truth {rank:.2f}"
        assert ratio < 0.4, f"frame {k}: nearest quarter / farthest quarter of the depth {ratio:.2f}"
