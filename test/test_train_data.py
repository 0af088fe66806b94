"""Training data: --data specs, proxy labels, augmentation, videos, bags, KITTI, a semantic teacher."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from omeganet_ros.classes import IGNORE_ID, ROAD
from omeganet_ros.train.data import SemanticTeacher, TripletDataset, build_dataset, collate_triplets, parse_spec
from omeganet_ros.train.trainer import DEFAULT_CONFIG, Trainer, merge_config
from test_train_helpers import TINY, corridor, write_image_folder, write_sequence

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def frames():
    return corridor(6)


def test_spec_parsing_and_errors():
    spec = parse_spec("folder:/data/a,b/imgs,labels=/data/labels,intrinsics=/k.txt")
    assert spec.args == ["/data/a,b/imgs"] and spec.options == {"labels": "/data/labels", "intrinsics": "/k.txt"}
    assert parse_spec("bag:/bags/run1:/camera/image_raw").args == ["/bags/run1", "/camera/image_raw"]
    assert parse_spec("synth:seed=4,frames=20").options == {"seed": "4", "frames": "20"}
    with pytest.raises(ValueError, match="expected KIND"):
        parse_spec("/just/a/path")
    with pytest.raises(ValueError, match="bag:PATH:TOPIC"):
        parse_spec("bag:/only/a/bag")
    with pytest.raises(OSError, match="does not exist"):
        build_dataset(["folder:/no/such/folder"], (128, 64))
    with pytest.raises(ValueError, match="unknown options"):
        build_dataset(["synth:seed=1,frames=4,colour=red"], (128, 64))


def test_label_folder_intrinsics_and_resize(frames, tmp_path):
    images, _, K = frames
    folder = write_image_folder(tmp_path / "img", images)
    labels = tmp_path / "labels"
    labels.mkdir()
    for p in sorted(folder.iterdir()):
        cv2.imwrite(str(labels / (p.stem + ".png")), np.full((64, 128), ROAD, np.uint8))
    np.savetxt(tmp_path / "K.txt", K)
    ds = build_dataset([f"folder:{folder},labels={labels},intrinsics={tmp_path / 'K.txt'}"], (96, 64), augment=False)
    item = ds[0]
    assert ds.has_any_labels and item["cur"].shape == (3, 64, 96)
    assert (item["labels"] == ROAD).all() and bool(item["has_labels"]) and bool(item["has_K"])
    assert item["K"][0, 0] == pytest.approx(K[0, 0] * 96 / 128, rel=1e-5)  # K follows the resize
    no_labels = build_dataset([f"folder:{folder}"], (96, 64), augment=False)
    assert not no_labels.has_any_labels and (no_labels[0]["labels"] == IGNORE_ID).all()


def test_augmentation_flips_consistently_and_is_deterministic(frames, tmp_path):
    images, depths, K = frames
    seq = write_sequence(tmp_path / "seq", images, depths, K)
    clean = build_dataset([f"sequence:{seq}"], (128, 64), augment=False)
    aug = build_dataset([f"sequence:{seq}"], (128, 64), augment=True, seed=1)
    flipped = kept = jittered = 0
    for epoch in range(3):
        aug.set_epoch(epoch)
        for i in range(len(aug)):
            a, c = aug[i], clean[i]
            assert torch.equal(a["cur"], aug[i]["cur"])  # a function of (seed, epoch, index) only
            if torch.equal(a["cur"], c["cur"].flip(-1)):
                flipped += 1
                assert a["K"][0, 2] == pytest.approx(127 - c["K"][0, 2])
                assert torch.equal(a["depth"], c["depth"].flip(-1))
            else:
                assert torch.equal(a["cur"], c["cur"]) and torch.equal(a["K"], c["K"])
                kept += 1
            if not torch.equal(a["cur_aug"], a["cur"]):
                jittered += 1
                # The same jitter for the three frames: the networks see a consistent sequence.
                assert not torch.equal(a["prev_aug"], a["prev"]) and not torch.equal(a["next_aug"], a["next"])
    assert flipped and kept and jittered


def test_video_and_bag_specs(frames, tmp_path):
    images, _, _ = frames
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 64))
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    ds = build_dataset([f"video:{video}"], (128, 64), augment=False)
    assert len(ds) == len(images) - 2
    assert np.abs(ds[0]["cur"].numpy() * 255 - images[1].transpose(2, 0, 1)).mean() < 12  # MJPG is lossy

    from omeganet_ros.data.rosbag_io import BagWriter

    bag = tmp_path / "bag"
    with BagWriter(bag, storage="mcap") as w:
        for i, image in enumerate(images):
            w.write_image("/camera/image_raw", 1_000_000_000 + i * 100_000_000, image, "rgb8", "camera")
    ds = build_dataset([f"bag:{bag}:/camera/image_raw"], (128, 64), augment=False)
    assert len(ds) == len(images) - 2
    assert np.abs(ds[0]["cur"].numpy() * 255 - images[1].transpose(2, 0, 1)).max() < 1.5
    with pytest.raises(ValueError, match="no topic"):
        build_dataset([f"bag:{bag}:/other"], (128, 64))


@pytest.mark.skipif(not (SHARED / "kitti_raw_tiny").is_dir(), reason="../shared/data/kitti_raw_tiny not present")
def test_kitti_split_file():
    root = SHARED / "kitti_raw_tiny"
    ds = build_dataset([f"kitti:{root}:{root / 'kitti_tiny.txt'}"], (192, 64), augment=False)
    assert len(ds) == 5  # frames 1–5 listed, 0 and 6 only serve as neighbours
    item = ds[0]
    assert bool(item["has_K"]) and item["K"][0, 0] == pytest.approx(721.5377 * 192 / 1242, rel=1e-4)
    assert bool(item["has_depth"]) and ds.sequences[0].depth_crop == "garg"


class RoadTeacher:
    """A stand-in proxy-label teacher (the real one is a pretrained network): everything is road."""

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return torch.full((images.shape[0], images.shape[2], images.shape[3]), ROAD, dtype=torch.long)


def test_semantic_teacher_supplies_proxy_labels(frames, tmp_path):
    torch.set_num_threads(1)
    images, depths, K = frames
    seq = write_sequence(tmp_path / "seq", images, depths, K)
    teacher = RoadTeacher()
    assert isinstance(teacher, SemanticTeacher)
    config = merge_config(merge_config(DEFAULT_CONFIG, TINY), {})
    trainer = Trainer(config, [f"sequence:{seq}"], tmp_path / "out", semantic_teacher=teacher, progress=False)
    trainer.train(2)
    assert trainer.tasks == ["depth", "semantic"] and teacher.calls == 2


def test_collate_counts_unreadable_items(frames):
    images, _, _ = frames
    batch = collate_triplets([None, None])
    assert batch == {"skipped": 2}
    assert isinstance(TripletDataset, type)


def test_cityscapes_snippets_never_mix(frames, tmp_path):
    images, _, _ = frames
    folder = tmp_path / "leftImg8bit_sequence" / "train" / "aachen"
    folder.mkdir(parents=True)
    for seq, start in ((0, 19), (1, 0)):
        for k, image in enumerate(images[:4]):
            name = f"aachen_{seq:06d}_{start + k:06d}_leftImg8bit.png"
            cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    ds = build_dataset([f"cityscapes:{tmp_path}"], (128, 64), augment=False)
    assert len(ds.sequences) == 2 and len(ds) == 4  # 2 triplets per 4-frame snippet, none across snippets


def test_five_frame_items_carry_t_plus_and_minus_two(frames, tmp_path):
    images, depths, K = frames
    seq = write_sequence(tmp_path / "seq", images, depths, K)
    triplets = build_dataset([f"sequence:{seq}"], (128, 64), augment=False)
    five = build_dataset([f"sequence:{seq}"], (128, 64), augment=False, context=1)
    assert len(five) == len(triplets) - 2  # the first and last centres have no t ∓ 2
    item = five[0]  # centre 2
    by_centre = {triplets.items[i][1]: triplets[i] for i in range(len(triplets))}
    assert torch.equal(item["cur"], by_centre[2]["cur"]) and torch.equal(item["prev"], by_centre[2]["prev"])
    assert torch.equal(item["prev2"], by_centre[1]["prev"]) and torch.equal(item["next2"], by_centre[3]["next"])
    assert "prev2" not in triplets[0]
    with pytest.raises(ValueError, match="context"):
        build_dataset([f"sequence:{seq}"], (128, 64), context=2)
    # Stage 2's reverse triplets are proper with five frames: centred on t+1 and t−1, no repeated frame.
    from omeganet_ros.train.stages import reverse_triplets

    batch = collate_triplets([item])
    prev_in, centre_in, next_in = reverse_triplets(batch)
    assert torch.equal(centre_in[1], item["next"]) and torch.equal(next_in[1], item["next2"])
    assert torch.equal(prev_in[1], item["cur"])
    assert torch.equal(centre_in[2], item["prev"]) and torch.equal(prev_in[2], item["prev2"])
    assert torch.equal(next_in[2], item["cur"])
    degenerate = reverse_triplets(collate_triplets([triplets[0]]))
    assert torch.equal(degenerate[0][1], degenerate[2][1])  # (t, t+1, t) without the extra frames


def test_synth_spec_can_drop_the_car_at_the_camera_speed():
    with_car = build_dataset(["synth:seed=5,frames=3"], (128, 64), augment=False)[0]["cur"]
    without = build_dataset(["synth:seed=5,frames=3,follower=0"], (128, 64), augment=False)[0]["cur"]
    assert not torch.equal(with_car, without)
    with pytest.raises(ValueError, match="follower must be 0 or 1"):
        build_dataset(["synth:seed=5,frames=3,follower=no"], (128, 64))
