"""omeganet-export: the engine's five per-frame graphs, written by the backends' own export into a graph cache
folder that the engine then loads without exporting again (export ahead of deployment)."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the exported graphs")
pytest.importorskip("onnx", reason="onnx is needed by torch.onnx.export")

from omeganet_ros.backends.graphs import GRAPH_NAMES, OPSET  # noqa: E402
from omeganet_ros.checkpoint import save_checkpoint  # noqa: E402
from omeganet_ros.cli import export  # noqa: E402
from omeganet_ros.engine import SceneEngine  # noqa: E402
from omeganet_ros.nets import build_networks  # noqa: E402

SIZE = (128, 64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(2)
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("export")
    ckpt = save_checkpoint(folder / "model.pt", build_networks(), input_size=SIZE)
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert export.main(["--checkpoint", str(ckpt), "--backend", "onnxruntime", "--out", str(folder / "out")]) == 0
    return ckpt, folder / "out", json.loads(stdout.getvalue())


def test_export_writes_the_per_frame_graphs_into_a_cache_folder(exported):
    _, out, report = exported
    folder = out / "graphs" / report["folder"].rsplit("/", 1)[-1]
    assert report["folder"] == str(folder) and report["exported_now"] is True
    assert report["backend"] == "onnxruntime" and report["precision"] == "fp32" and report["size"] == list(SIZE)
    # the five per-frame graphs (encoders once per frame, decoders per triple), not the old three-frame networks
    assert set(report["graphs"]) == set(GRAPH_NAMES)
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted([f"{n}.onnx" for n in GRAPH_NAMES] + ["manifest.json"]), files
    assert not (out / "camnet.onnx").exists() and not (out / "ofnet.onnx").exists()
    assert report["graphs"]["dsnet"]["inputs"] == ["image"]
    assert report["graphs"]["dsnet"]["outputs"] == ["disp", "semantic"]
    assert report["graphs"]["flow_decoder"]["inputs"][0].startswith("prev_")
    for graph, diffs in report["max_abs_diff_vs_torch_fp32"].items():  # each checked against PyTorch fp32
        assert set(diffs) == set(report["graphs"][graph]["outputs"])
        assert max(diffs.values()) < 1e-2, (graph, diffs)
    import onnx

    model = onnx.load(str(folder / "dsnet.onnx"))
    assert any(o.domain in ("", "ai.onnx") and o.version == OPSET for o in model.opset_import)


def test_the_engine_loads_the_exported_folder_without_exporting(exported):
    ckpt, out, report = exported
    engine = SceneEngine(checkpoint=str(ckpt), device="cpu", backend="onnxruntime", graph_cache=out,
                         output_resolution="network", num_threads=1)
    described = engine.describe()
    assert described["backend"] == "onnxruntime" and described["graph_exported_now"] is False
    assert described["graph_cache"] == report["folder"]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8) for _ in range(3)]
    outputs = [engine.push(f, 0.1 * i) for i, f in enumerate(frames)]
    assert outputs[-1] is not None and outputs[-1].flow.shape == (SIZE[1], SIZE[0], 2)
    # a second export of the same model finds the valid folder and keeps it
    again = export.export(str(ckpt), None, "onnxruntime", "auto", out, 1)
    assert again["folder"] == report["folder"] and again["exported_now"] is False


def test_export_errors(tmp_path, capsys):
    assert export.main(["--checkpoint", str(tmp_path / "none.pt"), "--backend", "onnxruntime",
                        "--out", str(tmp_path)]) == 2
    assert "none.pt" in capsys.readouterr().err
    assert export.main(["--checkpoint", "random", "--backend", "onnxruntime", "--precision", "bf16",
                        "--out", str(tmp_path)]) == 2
    assert "onnxruntime" in capsys.readouterr().err and not (tmp_path / "graphs").exists()
    with pytest.raises(SystemExit):  # torch runs the networks as they are: nothing to export
        export.build_parser().parse_args(["--backend", "torch"])
