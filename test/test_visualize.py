"""The flow colouring (a float32 lookup table) against the Middlebury formula evaluated in float64."""
import numpy as np

from omeganet_ros.visualize import FLOW_COLOR_WHEEL, colorize_flow


def middlebury_float64(flow: np.ndarray) -> np.ndarray:
    """Baker et al.'s colouring written out directly (float64, interpolated wheel), the reference for the LUT."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    valid = np.isfinite(u) & np.isfinite(v)
    u, v = np.where(valid, u, 0.0), np.where(valid, v, 0.0)
    magnitude = np.hypot(u, v)
    radius = magnitude / max(magnitude.max(), 1e-9)
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (len(FLOW_COLOR_WHEEL) - 1)
    k0 = np.floor(position).astype(int)
    f = (position - k0)[..., None]
    colour = ((1 - f) * FLOW_COLOR_WHEEL[k0] + f * FLOW_COLOR_WHEEL[(k0 + 1) % len(FLOW_COLOR_WHEEL)]) / 255.0
    colour = 1 - radius[..., None] * (1 - colour)
    rgb = np.floor(255 * colour).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def test_lut_colouring_matches_the_float64_formula():
    rng = np.random.default_rng(3)
    flow = (rng.standard_normal((64, 96, 2)) * 7).astype(np.float32)
    flow[3, :4] = [[np.nan, 1.0], [1.0, np.inf], [-np.inf, 0.0], [np.nan, np.nan]]
    got = colorize_flow(flow).astype(int)
    want = middlebury_float64(flow).astype(int)
    assert np.abs(got - want).max() <= 1
    assert np.abs(got - want).mean() < 0.25                     # mostly identical, not merely close
    assert not got[3, :4].any()                                 # non-finite in either component: black


def test_beyond_the_given_maximum_is_dimmed():
    flow = np.array([[[1.0, 0.0], [4.0, 0.0]]], np.float32)
    rgb = colorize_flow(flow, max_magnitude=2.0).astype(int)[0]
    np.testing.assert_array_equal(rgb[0], [255, 127, 127])      # half the maximum: half saturated red
    np.testing.assert_array_equal(rgb[1], [191, 0, 0])          # twice the maximum: red × 0.75
