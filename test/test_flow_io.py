"""Flow file formats: KITTI 16-bit PNG and Middlebury .flo, lossless round trips."""
from __future__ import annotations

import numpy as np
import pytest

from omeganet_ros.data.flow_io import (read_flo_raw, read_flo_with_valid, read_flow, read_kitti_flow_with_valid,
                                       write_flo, write_kitti_flow)


def test_kitti_png_round_trip_real(shared_data, tmp_path):
    for name in ("flow_occ", "flow_noc"):
        source = shared_data / "kitti_flow" / name / "000010_10.png"
        flow, valid = read_kitti_flow_with_valid(source)
        assert flow.shape == (375, 1242, 2) and 0 < valid.mean() < 1
        out = tmp_path / f"{name}.png"
        write_kitti_flow(out, flow, valid)
        flow2, valid2 = read_kitti_flow_with_valid(out)
        assert np.array_equal(valid, valid2)
        assert np.array_equal(flow[valid], flow2[valid])
        # NaN-marked invalid pixels give the same file contents
        nan_flow = read_flow(source)
        assert np.array_equal(np.isnan(nan_flow[..., 0]), ~valid)
        write_kitti_flow(tmp_path / "nan.png", nan_flow)
        flow3, valid3 = read_kitti_flow_with_valid(tmp_path / "nan.png")
        assert np.array_equal(valid3, valid) and np.array_equal(flow3[valid], flow[valid])


def test_kitti_png_quantisation_and_range(tmp_path):
    rng = np.random.default_rng(0)
    flow = (np.round(rng.uniform(-500, 500, (7, 9, 2)) * 64) / 64).astype(np.float32)  # exactly representable
    write_kitti_flow(tmp_path / "f.png", flow)
    back, valid = read_kitti_flow_with_valid(tmp_path / "f.png")
    assert valid.all() and np.array_equal(back, flow)
    with pytest.raises(ValueError, match="range"):
        write_kitti_flow(tmp_path / "big.png", np.full((2, 2, 2), 600.0))
    with pytest.raises(ValueError, match="H×W×2"):
        write_kitti_flow(tmp_path / "bad.png", np.zeros((2, 2)))


def test_middlebury_round_trip_real(shared_data, tmp_path):
    source = shared_data / "middlebury_flow" / "Urban2" / "flow10.flo"
    raw = read_flo_raw(source)
    assert raw.shape == (480, 640, 2)
    write_flo(tmp_path / "copy.flo", raw)
    assert (tmp_path / "copy.flo").read_bytes() == source.read_bytes()
    flow, valid = read_flo_with_valid(source)
    assert np.array_equal(flow[valid], raw[valid])


def test_flo_unknown_and_bad_files(tmp_path):
    flow = np.zeros((3, 4, 2), np.float32)
    flow[1, 2] = np.nan
    write_flo(tmp_path / "u.flo", flow)
    back, valid = read_flo_with_valid(tmp_path / "u.flo")
    assert valid.sum() == 11 and not valid[1, 2]
    assert np.isnan(read_flow(tmp_path / "u.flo")[1, 2]).all()
    (tmp_path / "bad.flo").write_bytes(b"nope" + bytes(8))
    with pytest.raises(ValueError, match="magic"):
        read_flo_raw(tmp_path / "bad.flo")
    (tmp_path / "short.flo").write_bytes((tmp_path / "u.flo").read_bytes()[:-4])
    with pytest.raises(ValueError, match="bytes"):
        read_flo_raw(tmp_path / "short.flo")
    with pytest.raises(OSError):
        read_kitti_flow_with_valid(tmp_path / "missing.png")
