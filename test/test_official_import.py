"""The authors' TF variable names → our networks (omeganet_ros.official_import), without TensorFlow.

A fake release is made from our own networks' state dicts run backwards through the name map
(OIHW → HWIO), so a wrong name, a wrong transposition or a missing variable shows.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from omeganet_ros.checkpoint import CheckpointError, load_checkpoint
from omeganet_ros.cli import import_official as cli
from omeganet_ros.nets import build_networks
from omeganet_ros.official_import import import_official, networks_from_variables, variable_map


def fake_release(include_flow: bool = True, seed: int = 0) -> tuple[dict, dict]:
    """({TF name: array}, our networks they came from) with random weights and statistics."""
    torch.manual_seed(seed)
    nets = build_networks(architecture="official")
    variables = {}
    for net_name, names in variable_map().items():
        if net_name == "ofnet" and not include_flow:
            continue
        state = nets[net_name].state_dict()
        for tf_name, key in names.items():
            value = (torch.randn_like(state[key]) if "running_var" not in key else torch.rand_like(state[key]) + 0.5).detach()
            state[key] = value
            array = value.numpy()
            variables[tf_name] = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array  # OIHW → HWIO
        nets[net_name].load_state_dict(state)
    return variables, nets


def test_every_authors_variable_has_one_place():
    mapping = variable_map()
    assert {k: len(v) for k, v in mapping.items()} == {"dsnet": 222, "camnet": 61, "ofnet": 98}  # 381 in all
    for net_name, names in mapping.items():
        assert len(set(names.values())) == len(names), f"{net_name}: two variables map onto one parameter"


def test_import_puts_every_value_where_it_belongs():
    variables, source = fake_release()
    variables["beta1_power"] = np.float32(0.9)  # optimiser state in a training checkpoint: ignored
    variables["MultiViewNetwork/pose_net/pred/Conv/weights/Adam"] = np.zeros((1, 1, 256, 12), np.float32)
    networks, report = networks_from_variables(variables)
    assert sorted(networks) == ["camnet", "dsnet", "ofnet"]
    assert report["variables_imported"] == 381 and report["values_imported"] == 9_397_192
    assert report["variables_ignored"] == 2
    for name, net in networks.items():
        for key, value in source[name].state_dict().items():
            assert torch.equal(net.state_dict()[key], value), f"{name}.{key}"
    kernel = variables["MultiViewNetwork/feature_extractor/img_pyramid/conv1a/Conv/weights"]  # HWIO
    assert networks["dsnet"].encoder.levels[0][0].conv.weight[5, 2, 0, 1].item() == pytest.approx(float(kernel[0, 1, 2, 5]))


def test_dsnet_release_becomes_dsnet_and_camnet():
    variables, _ = fake_release(include_flow=False)
    networks, report = networks_from_variables(variables)
    assert sorted(networks) == ["camnet", "dsnet"] and report["networks"] == ["camnet", "dsnet"]


def test_a_checkpoint_that_is_not_omeganet_names_what_is_missing():
    variables, _ = fake_release()
    for name in [n for n in variables if "pose_net" in n]:
        del variables[name]
    with pytest.raises(CheckpointError, match=r"my.ckpt: not an ΩNet checkpoint.*camnet: 21 variable\(s\) missing.*pose_net"):
        networks_from_variables(variables, source="my.ckpt")
    with pytest.raises(CheckpointError, match="dsnet: 222 variable"):
        networks_from_variables({"resnet/conv1/weights": np.zeros((7, 7, 3, 64), np.float32)})


def test_half_a_flow_network_is_refused():
    variables, _ = fake_release()
    del variables["superflow/context_network/dilated_conv7/biases"]
    with pytest.raises(CheckpointError, match="SD-OFNet.*incomplete.*dilated_conv7/biases"):
        networks_from_variables(variables)


def test_a_wrong_shape_names_the_variable():
    variables, _ = fake_release()
    variables["superflow/estimator_level_2/conv1/weights"] = np.zeros((3, 3, 10, 128), np.float32)
    with pytest.raises(CheckpointError, match=r"estimator_level_2/conv1/weights has shape \(3, 3, 10, 128\)"):
        networks_from_variables(variables)


def test_checkpoint_written_with_provenance(tmp_path, monkeypatch):
    variables, _ = fake_release()
    prefix = tmp_path / "omeganet"
    (tmp_path / "omeganet.index").write_bytes(b"index")
    (tmp_path / "omeganet.data-00000-of-00001").write_bytes(b"data")
    monkeypatch.setattr("omeganet_ros.official_import.read_tf_checkpoint", lambda p, tf_python=None: variables)
    path, _ = import_official(prefix, tmp_path / "out.pt", tau=0.3)
    ckpt = load_checkpoint(path)
    assert ckpt.input_size == (640, 192) and len(ckpt.classes) == 19
    assert ckpt.provenance["sha256"] == hashlib.sha256(b"indexdata").hexdigest()
    assert ckpt.provenance["motion_threshold"] == 0.3
    assert "authors' terms" in ckpt.provenance["license"]
    assert {n: s["class"] for n, s in ckpt.architecture.items()} == {"dsnet": "DSNet", "camnet": "CamNet", "ofnet": "OFNet"}


def test_cli_missing_files_is_a_clear_error(tmp_path, capsys):
    assert cli.main([str(tmp_path / "models" / "omeganet"), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "omeganet.index" in err and "prefix" in err
