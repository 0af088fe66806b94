"""Checkpoint format: round trip, fp16 weights, and clear errors naming the file."""
import pytest
import torch

from omeganet_ros import checkpoint as ckpt_mod
from omeganet_ros.checkpoint import (FORMAT, CheckpointError, build_networks_from_checkpoint, load_checkpoint,
                                     save_checkpoint)
from omeganet_ros.classes import CLASS_NAMES
from omeganet_ros.nets import CamNet, DSNet, LegacyDSNet


@pytest.fixture(scope="module")
def dsnet():
    torch.manual_seed(0)
    return DSNet().eval()


def test_round_trip_restores_weights_and_metadata(tmp_path, dsnet):
    path = save_checkpoint(tmp_path / "sub" / "model.pt", {"dsnet": dsnet}, input_size=(192, 64),
                           provenance={"step": 12, "git": "abc"}, extra={"note": "x"})
    assert path.is_file() and not list(path.parent.glob("*.tmp"))  # atomic: no temp file left behind
    ckpt = load_checkpoint(path)
    assert ckpt.path == path and ckpt.input_size == (192, 64)
    assert ckpt.classes == list(CLASS_NAMES)
    assert ckpt.provenance == {"step": 12, "git": "abc"} and ckpt.extra == {"note": "x"}
    assert ckpt.architecture["dsnet"]["class"] == "DSNet"
    nets = build_networks_from_checkpoint(ckpt)
    x = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(nets["dsnet"](x)["disp_full"], dsnet(x)["disp_full"], rtol=0, atol=0)
    # the file is a plain dict readable with weights_only=True
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and set(raw["state_dicts"]) == {"dsnet"}


def test_fp16_state_dicts_load_as_fp32(tmp_path, dsnet):
    path = save_checkpoint(tmp_path / "half.pt", {"dsnet": dsnet}, input_size=(128, 64))
    raw = torch.load(path, weights_only=True)
    raw["state_dicts"]["dsnet"] = {k: (v.half() if v.is_floating_point() else v) for k, v in raw["state_dicts"]["dsnet"].items()}
    torch.save(raw, path)
    ckpt = load_checkpoint(path)
    assert all(v.dtype != torch.float16 for v in ckpt.state_dicts["dsnet"].values())
    net = build_networks_from_checkpoint(ckpt)["dsnet"]
    for (name, loaded), original in zip(net.state_dict().items(), dsnet.state_dict().values()):
        if loaded.is_floating_point():
            assert loaded.dtype == torch.float32, name
            torch.testing.assert_close(loaded, original, atol=2e-3, rtol=2e-3)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.pt.*not found"):
        load_checkpoint(tmp_path / "nothere.pt")


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="corrupt.pt.*cannot be read"):
        load_checkpoint(path)


def test_truncated_file(tmp_path, dsnet):
    path = save_checkpoint(tmp_path / "trunc.pt", {"dsnet": dsnet}, input_size=(128, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_file_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt.*cannot be read safely"):
        load_checkpoint(path)


def test_wrong_format(tmp_path, dsnet):
    path = tmp_path / "plain_state_dict.pt"
    torch.save(dsnet.state_dict(), path)
    with pytest.raises(CheckpointError, match="plain_state_dict.pt.*not an omeganet_ros.checkpoint/1"):
        load_checkpoint(path)


def test_other_architecture(tmp_path, dsnet):
    path = save_checkpoint(tmp_path / "other.pt", {"dsnet": dsnet}, input_size=(128, 64))
    raw = torch.load(path, weights_only=True)
    raw["architecture"]["dsnet"]["class"] = "PSPNet"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="other.pt.*unknown architecture 'PSPNet'"):
        build_networks_from_checkpoint(load_checkpoint(path))
    # weights of a different network under the expected name
    path2 = save_checkpoint(tmp_path / "swapped.pt", {"dsnet": CamNet()}, input_size=(128, 64))
    raw = torch.load(path2, weights_only=True)
    raw["architecture"]["dsnet"] = {"class": "DSNet", "kwargs": {}}
    torch.save(raw, path2)
    with pytest.raises(CheckpointError, match="swapped.pt.*'dsnet'.*(missing|unexpected|shape)"):
        build_networks_from_checkpoint(load_checkpoint(path2))


def test_shape_mismatch_is_reported(tmp_path):
    path = save_checkpoint(tmp_path / "classes5.pt", {"dsnet": DSNet(num_classes=5)}, input_size=(128, 64))
    raw = torch.load(path, weights_only=True)
    raw["architecture"]["dsnet"]["kwargs"] = {"num_classes": 19}
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"classes5.pt.*shape mismatch.*semantic.*\(5, 16, 3, 3\)"):
        build_networks_from_checkpoint(load_checkpoint(path))


def test_format_1_files_load_into_the_legacy_networks(tmp_path):
    # Format 1 was written before the networks followed the authors' code: its "DSNet" is today's LegacyDSNet.
    path = save_checkpoint(tmp_path / "old.pt", {"dsnet": LegacyDSNet(num_classes=4)}, input_size=(128, 64))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT == "omeganet_ros.checkpoint/2"
    raw["format"] = "omeganet_ros.checkpoint/1"
    raw["architecture"]["dsnet"]["class"] = "DSNet"
    torch.save(raw, path)
    ckpt = load_checkpoint(path)
    assert ckpt.architecture["dsnet"]["class"] == "LegacyDSNet"
    assert isinstance(build_networks_from_checkpoint(ckpt)["dsnet"], LegacyDSNet)


def test_architecture_kwargs_are_recorded(tmp_path):
    path = save_checkpoint(tmp_path / "k.pt", {"dsnet": DSNet(num_classes=7)}, input_size=(128, 64))
    ckpt = load_checkpoint(path)
    assert ckpt.architecture["dsnet"]["kwargs"].get("num_classes") == 7
    assert build_networks_from_checkpoint(ckpt)["dsnet"].num_classes == 7


def test_default_checkpoint_path(monkeypatch, tmp_path):
    monkeypatch.setattr(ckpt_mod, "DEFAULT_CHECKPOINT", tmp_path / "none.pt")
    assert ckpt_mod.default_checkpoint_path() is None
    (tmp_path / "none.pt").write_bytes(b"x")
    assert ckpt_mod.default_checkpoint_path() == tmp_path / "none.pt"


def test_save_rejects_bad_input_size(tmp_path, dsnet):
    with pytest.raises(ValueError, match="input_size"):
        save_checkpoint(tmp_path / "x.pt", {"dsnet": dsnet}, input_size=(128,))


@pytest.mark.parametrize("field, value, message", [
    ("input_size", [100000, 100000], r"field 'input_size' must be within 32\.\.8192"),
    ("input_size", ["640", 192], r"field 'input_size' must be \[W, H\] integers"),
    ("state_dicts", [1, 2], r"field 'state_dicts' must be a dict of networks, got list"),
    ("architecture", "DSNet", r"field 'architecture' must be a dict"),
    ("classes", "road", r"field 'classes' must be a list"),
    ("provenance", "trained", r"field 'provenance' must be a dict"),
])
def test_malformed_fields_name_the_file_and_field(tmp_path, dsnet, field, value, message):
    path = save_checkpoint(tmp_path / "bad.pt", {"dsnet": dsnet}, input_size=(128, 64))
    raw = torch.load(path, weights_only=True)
    raw[field] = value
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="bad.pt.*" + message):
        load_checkpoint(path)


def test_non_finite_weights_are_refused(tmp_path, dsnet):
    path = save_checkpoint(tmp_path / "nan.pt", {"dsnet": dsnet}, input_size=(128, 64))
    raw = torch.load(path, weights_only=True)
    key = next(k for k, v in raw["state_dicts"]["dsnet"].items() if v.is_floating_point())
    raw["state_dicts"]["dsnet"][key][0] = float("nan")
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=f"nan.pt: field 'state_dicts.dsnet.{key}' holds NaN or Inf"):
        load_checkpoint(path)
