"""ONNX export: every network runs in ONNX Runtime and matches PyTorch."""
import json

import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is needed to check the exported graphs")
pytest.importorskip("onnx", reason="onnx is needed by torch.onnx.export")

from omeganet_ros.checkpoint import save_checkpoint  # noqa: E402
from omeganet_ros.cli import export  # noqa: E402
from omeganet_ros.nets import build_networks  # noqa: E402

SIZE = (128, 64)
TOLERANCE = {"disp": 1e-4, "semantic": 1e-3, "motion": 1e-5, "K": 1e-3, "flow": 1e-3}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(2)
    torch.manual_seed(1)
    networks = build_networks()
    folder = tmp_path_factory.mktemp("onnx")
    ckpt = save_checkpoint(folder / "model.pt", networks, input_size=SIZE)
    assert export.main(["--checkpoint", str(ckpt), "--out", str(folder / "out")]) == 0
    return networks, folder / "out"


@pytest.mark.parametrize("name", ["dsnet", "camnet", "ofnet"])
def test_onnx_runtime_matches_pytorch(exported, name):
    networks, folder = exported
    path = folder / f"{name}.onnx"
    assert path.is_file()
    diffs = export.verify_network(name, networks[name], path, SIZE, batch=2, seed=5)  # batch is dynamic
    for output, diff in diffs.items():
        assert diff < TOLERANCE[output], f"{name}.{output}: ONNX Runtime differs from PyTorch by {diff}"


def test_export_report_and_checkpoint_size(exported):
    _, folder = exported
    report = json.loads((folder / "export.json").read_text())
    assert report["opset"] == 17 and report["size"] == list(SIZE)  # the checkpoint's input size is the default
    assert set(report["files"]) == {"dsnet", "camnet", "ofnet"}
    import onnx
    model = onnx.load(str(folder / "dsnet.onnx"))
    assert any(o.domain in ("", "ai.onnx") and o.version == 17 for o in model.opset_import)
    assert [i.name for i in model.graph.input] == ["image"]


def test_export_errors(tmp_path, capsys):
    assert export.main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "none.pt" in capsys.readouterr().err
    assert export.main(["--checkpoint", "random", "--out", str(tmp_path), "--networks", "posenet"]) == 2
    assert "posenet" in capsys.readouterr().err
