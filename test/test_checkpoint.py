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


SMALL = (8, 16, 24, 32, 48)  # encoder channels other than the default (16, 32, 64, 128, 256)
NON_DEFAULT_NETWORKS = [
    ("DSNet", {"num_classes": 5, "encoder_channels": SMALL}),
    ("CamNet", {"encoder_channels": SMALL, "reversal_symmetric": True, "still_subtracted": True}),
    ("OFNet", {"channels": (8, 16, 24, 32, 48, 64)}),
    ("LegacyDSNet", {"num_classes": 4, "encoder_channels": SMALL}),
    ("LegacyCamNet", {"encoder_channels": SMALL, "pose_negative_slope": 0.2}),
    ("LegacyOFNet", {"channels": (8, 16, 24, 32, 48, 64)}),
    ("MoreauNet", {"tasks": ("depth",), "depth_normalization": "none"}),
    ("Monodepth2PoseNet", {"num_frames_to_predict_for": 1}),
    ("Monodepth2ResNet18", {}),
]


@pytest.mark.parametrize("cls_name, kwargs", NON_DEFAULT_NETWORKS, ids=[n for n, _ in NON_DEFAULT_NETWORKS])
def test_every_network_with_a_non_default_architecture_saves_and_loads_back_identically(tmp_path, cls_name, kwargs):
    # Before each network declared its record, LegacyDSNet / LegacyCamNet lost their encoder_channels
    # (attribute introspection found no such attribute), so the file could not be built back.
    from omeganet_ros import nets

    torch.manual_seed(1)
    net = getattr(nets, cls_name)(**kwargs).eval()
    path = save_checkpoint(tmp_path / "net.pt", {"net": net}, input_size=(128, 64))
    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    assert torch.load(path, weights_only=True)["architecture"]["net"] == {"class": cls_name, "kwargs": expected}
    loaded = build_networks_from_checkpoint(load_checkpoint(path))["net"]
    assert type(loaded) is type(net) and loaded.config() == net.config() == expected
    original = net.state_dict()
    assert list(loaded.state_dict()) == list(original)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, original[key]), key


def test_the_record_is_what_the_network_was_built_with_and_names_every_constructor_argument():
    import inspect

    from omeganet_ros import nets
    from omeganet_ros.nets.config import ConfiguredNet

    classes = [*{cls for arch in nets.ARCHITECTURES.values() for cls in arch.values()},
               *nets.MOREAU_NETWORKS.values(), nets.Monodepth2ResNet18]
    for cls in classes:
        assert issubclass(cls, ConfiguredNet), cls.__name__
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        assert sorted(cls().config()) == sorted(params), cls.__name__  # every argument recorded, nothing else
    # the record is set from the arguments, not read back from attributes of the same name
    dsnet = DSNet(encoder_channels=SMALL)
    dsnet.encoder_channels = (1, 2)
    assert dsnet.config()["encoder_channels"] == list(SMALL)


def test_a_module_without_an_architecture_record_is_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match="'head' \\(Conv2d\\) does not record its architecture"):
        save_checkpoint(tmp_path / "x.pt", {"head": torch.nn.Conv2d(3, 3, 1)}, input_size=(128, 64))
    assert not list(tmp_path.iterdir())


def test_older_records_still_load(tmp_path):
    # A format-1 file (the first bundled model's: class names without "Legacy", records found by
    # introspection) and a format-2 file whose record predates the explicit one (missing arguments
    # take their defaults).
    from omeganet_ros.nets import LegacyCamNet, LegacyOFNet

    legacy = {"dsnet": LegacyDSNet(), "camnet": LegacyCamNet(pose_negative_slope=0.1), "ofnet": LegacyOFNet()}
    path = save_checkpoint(tmp_path / "format1.pt", legacy, input_size=(320, 96))
    raw = torch.load(path, weights_only=True)
    raw["format"] = ckpt_mod.FORMAT_1
    raw["architecture"] = {"dsnet": {"class": "DSNet", "kwargs": {"num_classes": 19}},
                           "camnet": {"class": "CamNet", "kwargs": {"pose_negative_slope": 0.1}},
                           "ofnet": {"class": "OFNet", "kwargs": {"channels": [16, 32, 64, 96, 128, 192]}}}
    torch.save(raw, path)
    built = build_networks_from_checkpoint(load_checkpoint(path))
    assert {type(n).__name__ for n in built.values()} == {"LegacyDSNet", "LegacyCamNet", "LegacyOFNet"}
    assert built["camnet"].config()["pose_negative_slope"] == 0.1
    for name, net in built.items():
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), legacy[name].state_dict().values()))
    path = save_checkpoint(tmp_path / "old2.pt", {"dsnet": DSNet(), "camnet": CamNet()}, input_size=(128, 64))
    raw = torch.load(path, weights_only=True)
    raw["architecture"]["dsnet"]["kwargs"] = {"num_classes": 19}
    del raw["architecture"]["camnet"]["kwargs"]
    torch.save(raw, path)
    built = build_networks_from_checkpoint(load_checkpoint(path))
    assert built["dsnet"].config() == DSNet().config() and built["camnet"].config() == CamNet().config()


def test_a_record_written_before_an_argument_existed_loads_with_the_value_it_was_built_with(tmp_path):
    """MoreauNet files from before depth_normalization (default now "mean") were trained with the plain
    mapping: a record without the field must build "none", not the new default."""
    from omeganet_ros.nets import MoreauNet
    net = MoreauNet(tasks=["depth"], depth_normalization="none")
    path = save_checkpoint(tmp_path / "old.pt", {"moreau": net}, input_size=(128, 64))
    raw = torch.load(path, weights_only=True)
    del raw["architecture"]["moreau"]["kwargs"]["depth_normalization"]
    torch.save(raw, path)
    loaded = build_networks_from_checkpoint(load_checkpoint(path))["moreau"]
    assert loaded.depth_normalization == "none"
    assert MoreauNet(tasks=["depth"]).depth_normalization == "mean"  # the default for new networks
