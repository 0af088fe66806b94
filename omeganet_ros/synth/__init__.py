"""The procedural driving world with exact ground truth (depth, flow, semantics, instances, motion, pose, K).

A seeded street (road with lanes and markings, kerbs, sidewalks, grass verges,
buildings, walls/fences, trees and hedges, lamp posts, signs, traffic lights,
parked cars, cars/trucks/buses in three lanes at per-lane speeds, a car ahead at
the camera's own speed, cyclists, walking/standing/crossing pedestrians) is ray
cast per pixel with NumPy; every output comes from the same hit that coloured
the pixel, so the ground truth is exact. Textures are anchored to surfaces
(world for the static scene, object-local for movers) and mip-mapped; lighting
is a fixed sun plus ambient. See ``world.py`` for output conventions.

Modules: ``road`` (centre line, lanes, ground ray casting), ``objects`` (shapes),
``scene`` (layout and object motion), ``trajectory`` (camera path), ``textures``,
``renderer`` (ray casting and shading), ``ground_truth`` (flow with occlusion),
``world`` (config, sequence iterator), ``writer`` (folder and ROS 2 bag).

Entry points: :class:`SynthConfig`, :class:`SyntheticSequence` (iterate for per-frame dicts),
:func:`iterate_frames` (in memory), :func:`generate_sequence` (folder and/or ROS 2 bag).
"""
from .world import GENERATOR_VERSION, SynthConfig, SyntheticSequence, iterate_frames, parse_size
from .writer import generate_sequence, write_sequence

__all__ = ["GENERATOR_VERSION", "SynthConfig", "SyntheticSequence", "iterate_frames", "parse_size",
           "generate_sequence", "write_sequence"]
