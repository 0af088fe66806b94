"""The semantic teacher: ESPNet loads the authors' files key for key, labels real Cityscapes frames,
refuses bad weights, caches its labels per dataset (reused, invalidated), and feeds the trainer."""
import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from omeganet_ros.checkpoint import CheckpointError
from omeganet_ros.classes import IGNORE_ID
from omeganet_ros.teacher import DEFAULT_WEIGHTS, ESPNet, ESPNetC, ESPNetTeacher, SemanticTeacher, load_espnet
from omeganet_ros.teacher.espnet_teacher import ESPNET_MEAN_BGR, ESPNET_STD_BGR, network_size
from omeganet_ros.teacher.label_cache import load_labels, pixel_frame_key
from omeganet_ros.train.data import build_dataset
from omeganet_ros.train.trainer import DEFAULT_CONFIG, Trainer, merge_config
from test_train_helpers import TINY, corridor, write_image_folder

REPO = Path(__file__).resolve().parents[1]
SHARED_ESPNET = REPO.parent / "shared" / "data" / "weights" / "espnet"
SHARED_FILES = sorted(SHARED_ESPNET.glob("*/*.pth")) if SHARED_ESPNET.is_dir() else []


def test_bundled_weights_load_key_for_key_with_their_licence():
    net = load_espnet(DEFAULT_WEIGHTS)
    assert isinstance(net, ESPNet) and (net.classes, net.p, net.q) == (20, 2, 8)
    raw = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    assert set(raw) == {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    assert all(torch.equal(net.state_dict()[k], v) for k, v in raw.items())
    licence = (DEFAULT_WEIGHTS.parent / "LICENSE-ESPNet").read_text()
    assert "MIT License" in licence and "Sachin Mehta" in licence


@pytest.mark.skipif(not SHARED_FILES, reason=f"the authors' ESPNet files are not at {SHARED_ESPNET} (dev/CI machines only)")
@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shared_espnet_file_loads_without_missing_or_unexpected_keys(path):
    if "camvid" in path.name:
        pytest.skip("the CamVid model is another decoder variant (12 classes, and its refinement conv reads 31 = "
                    "12 + 19 channels: the level-1 features with the image), not the Cityscapes ESPNet")
    net = load_espnet(path)  # raises CheckpointError listing missing / unexpected / mis-shaped keys
    q = int(path.stem.split("_q_")[1])
    expected = ESPNet if path.parent.name == "decoder" else ESPNetC
    assert type(net) is expected and (net.classes, net.p, net.q) == (20, 2, q)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    if path.parent.name == "decoder" and q == 8:
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).digest()


def test_network_shapes_and_input_size_rule():
    net = ESPNet(classes=20, p=2, q=3).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 128)).shape == (1, 20, 64, 128)
        assert ESPNetC(classes=20, p=2, q=3).eval()(torch.rand(1, 3, 64, 128)).shape == (1, 20, 8, 16)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 3, 60, 128))
    assert network_size(2048, 1024) == (1024, 512)
    assert network_size(1242, 375) == (1024, 312)  # aspect ratio kept, multiples of 8
    assert network_size(960, 540, 640) == (640, 360)


def test_input_normalisation_is_the_authors_bgr_mean_std_over_255():
    teacher = ESPNetTeacher(input_width=128)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0  # RGB red
    x = teacher.normalise(red)
    bgr = (0.0, 0.0, 255.0)
    for c in range(3):
        assert float(x[0, c, 0, 0]) == pytest.approx((bgr[c] - ESPNET_MEAN_BGR[c]) / ESPNET_STD_BGR[c] / 255.0, rel=1e-5)


def test_teacher_labels_a_real_cityscapes_frame(shared_data):
    folder = shared_data / "cityscapes"
    image = cv2.cvtColor(cv2.imread(str(folder / "frankfurt_000000_000294_leftImg8bit.png")), cv2.COLOR_BGR2RGB)
    gt = cv2.imread(str(folder / "frankfurt_000000_000294_gtFine_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
    teacher = ESPNetTeacher()
    assert isinstance(teacher, SemanticTeacher)
    labels, confidence = teacher.labels(image)
    assert labels.shape == gt.shape and labels.dtype == np.uint8 and confidence.dtype == np.float32
    assert set(np.unique(labels)) <= set(range(19)) | {IGNORE_ID}
    assert 0.0 <= confidence.min() and confidence.max() <= 1.0
    valid = gt != IGNORE_ID
    accuracy = float((labels[valid] == gt[valid]).mean())
    assert accuracy > 0.8, accuracy  # measured 0.878; the majority class (road) alone gives 0.38
    # Confident pixels are the right ones more often than the rest.
    sure = valid & (confidence >= 0.5)
    assert (labels[sure] == gt[sure]).mean() > (labels[valid & ~sure] == gt[valid & ~sure]).mean()


# ------------------------------------------------------------------ bad weights files


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_corrupt_unsafe_and_foreign_weights_are_refused_naming_the_file(tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(DEFAULT_WEIGHTS.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"truncated\.pth: cannot be read safely"):
        load_espnet(truncated)

    marker = tmp_path / "pwned"
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"level1.conv.weight": torch.zeros(1), "payload": _RunsCode(marker)}, unsafe)
    with pytest.raises(CheckpointError, match=r"unsafe\.pth: cannot be read safely"):
        load_espnet(unsafe)
    assert not marker.exists()  # the pickle's code never ran

    not_state = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], not_state)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_espnet(not_state)

    state = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    state["encoder.extra.weight"] = torch.zeros(3)
    extra = tmp_path / "extra.pth"
    torch.save(state, extra)
    with pytest.raises(CheckpointError, match="1 unexpected keys"):
        load_espnet(extra)
    with pytest.raises(CheckpointError, match="file not found"):
        ESPNetTeacher(tmp_path / "absent.pth")


# ------------------------------------------------------------------ the label cache and the trainer


@pytest.fixture()
def counted_teacher_calls(monkeypatch):
    """Counts ESPNetTeacher.labels calls (the teacher really runs)."""
    calls = []
    original = ESPNetTeacher.labels

    def counting(self, image, focal_px=None):
        calls.append(self.fingerprint)
        return original(self, image, focal_px)

    monkeypatch.setattr(ESPNetTeacher, "labels", counting)
    return calls


def _labels_of(ds):
    return [ds.sequences[0].frames[c].labels() for c in range(1, len(ds.sequences[0].frames) - 1)]


def test_teacher_labels_are_cached_reused_and_invalidated(tmp_path, counted_teacher_calls):
    images, _, _ = corridor(5)
    folder = write_image_folder(tmp_path / "img", images)
    cache = tmp_path / "cache"
    spec = f"folder:{folder},labels=teacher,labels_cache={cache},min_confidence=0"

    first = build_dataset([spec], (128, 64), augment=False)
    assert len(counted_teacher_calls) == 3  # frames 1–3, the possible triplet centres
    assert first.has_any_labels and bool(first[0]["has_labels"])
    labels = _labels_of(first)
    assert labels[0].shape == (64, 128) and labels[0].dtype == np.uint8

    again = build_dataset([spec], (128, 64), augment=False)
    assert len(counted_teacher_calls) == 3  # nothing recomputed
    assert all(np.array_equal(a, b) for a, b in zip(labels, _labels_of(again)))

    # An edited frame gets new labels, the others are kept.
    path = sorted(folder.iterdir())[2]
    cv2.imwrite(str(path), np.zeros((64, 128, 3), np.uint8))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    build_dataset([spec], (128, 64), augment=False)
    assert len(counted_teacher_calls) == 4

    # Other teacher weights: another fingerprint, everything relabelled, the first entries untouched.
    state = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    state["classifier.weight"] = state["classifier.weight"] * 1.01
    other = tmp_path / "other.pth"
    torch.save(state, other)
    build_dataset([spec + f",teacher={other}"], (128, 64), augment=False)
    assert len(counted_teacher_calls) == 7 and len(set(counted_teacher_calls)) == 2
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2
    manifest = json.loads(next((cache / counted_teacher_calls[-1][:16]).glob("*/manifest.json")).read_text())
    assert manifest["weights"] == str(other)


def test_min_confidence_masks_uncertain_pixels(tmp_path):
    labels = np.full((4, 4), 13, np.uint8)
    confidence = np.full((4, 4), 250, np.uint8)
    confidence[0, :2] = 100  # 0.39
    cv2.imwrite(str(tmp_path / "l.png"), labels)
    cv2.imwrite(str(tmp_path / "c.png"), confidence)
    masked = load_labels(tmp_path / "l.png", tmp_path / "c.png", min_confidence=0.5)
    assert (masked[0, :2] == IGNORE_ID).all() and (masked[0, 2:] == 13).all() and (masked[1:] == 13).all()
    assert (load_labels(tmp_path / "l.png", tmp_path / "c.png", min_confidence=0.0) == 13).all()
    frame = np.zeros((4, 4, 3), np.uint8)
    changed = frame.copy()
    changed[0, 0, 0] = 1
    assert pixel_frame_key(frame) != pixel_frame_key(changed) and pixel_frame_key(frame) == pixel_frame_key(frame.copy())


def test_video_frames_range_and_teacher_labels(tmp_path, counted_teacher_calls):
    images, _, _ = corridor(6)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 64))
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    ds = build_dataset([f"video:{video},labels=teacher,labels_cache={tmp_path / 'cache'},frames=1:5"], (128, 64),
                       augment=False)
    assert len(ds.sequences[0].frames) == 4 and len(counted_teacher_calls) == 4
    assert ds.sequences[0].frames[0].name.endswith("#1") and ds.has_any_labels
    build_dataset([f"video:{video},labels=teacher,labels_cache={tmp_path / 'cache'}"], (128, 64), augment=False)
    assert len(counted_teacher_calls) == 6  # frames 1–4 came from the cache, 0 and 5 are new
    with pytest.raises(ValueError, match="START:STOP"):
        build_dataset([f"video:{video},frames=3"], (128, 64))


def test_a_training_step_learns_from_teacher_labels(tmp_path):
    torch.set_num_threads(1)
    images, _, _ = corridor(6)
    folder = write_image_folder(tmp_path / "img", images)
    config = merge_config(DEFAULT_CONFIG, TINY)
    spec = f"folder:{folder},labels=teacher,labels_cache={tmp_path / 'cache'}"
    trainer = Trainer(config, [spec], tmp_path / "out", progress=False)
    trainer.train(2)
    assert trainer.tasks == ["depth", "semantic"]
    with open(tmp_path / "out" / "log.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss_semantic")]
    assert len(rows) == 2 and all(np.isfinite(float(r["loss_semantic"])) and float(r["loss_semantic"]) > 0 for r in rows)
    without = Trainer(config, [f"folder:{folder}"], tmp_path / "out2", progress=False)
    with pytest.warns(UserWarning, match="semantic loss is off"):
        without.train(1)
    assert without.tasks == ["depth"]


def test_omeganet_teacher_cli_writes_labels_and_previews(tmp_path):
    images, _, _ = corridor(3)
    folder = write_image_folder(tmp_path / "img", images)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "omeganet_ros.cli.teacher", "--input", str(folder), "--out", str(out),
           "--quiet", "--input-width", "256", "--threads", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["frames_written"] == 3
    for index in range(3):
        labels = cv2.imread(str(out / "semantic" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        colour = cv2.imread(str(out / "semantic_color" / f"{index:06d}.png"))
        assert labels.shape == (64, 128) and colour.shape == (64, 128, 3)
        assert set(np.unique(labels)) <= set(range(19)) | {IGNORE_ID}
    assert json.loads((out / "meta.json").read_text())["weights_sha256"] == hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a pickle")
    result = subprocess.run(cmd[:-4] + ["--weights", str(bad)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2 and "bad.pth" in result.stderr


def test_teacher_labels_on_kitti_and_synthetic_sources(shared_data, tmp_path, counted_teacher_calls):
    root = shared_data / "kitti_raw_tiny"
    options = f"labels=teacher,labels_cache={tmp_path / 'cache'}"
    kitti = build_dataset([f"kitti:{root}:{root / 'kitti_tiny.txt'},{options}"], (192, 64), augment=False)
    assert len(counted_teacher_calls) == 5  # the five listed centres, not their neighbours 0 and 6
    centre = kitti.sequences[0].frames[1].labels()
    assert centre.shape == (375, 1242)  # labelled at the frame's own resolution
    # Labelled at Cityscapes' object scale (KITTI's fx from its calibration: 1944 wide) the teacher finds
    # 16 % road; at the default 1024 wide it found 5 % (and 23 % void).
    assert (centre == 0).mean() > 0.1, (centre == 0).mean()
    assert kitti.sequences[0].K is not None
    synth = build_dataset([f"synth:seed=3,frames=4,{options}"], (128, 64), augment=False)
    assert len(counted_teacher_calls) == 7 and synth.has_any_labels  # generated frames, keyed by their pixels
