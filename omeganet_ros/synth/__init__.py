"""The procedural driving world with exact ground truth (depth, flow, semantics, instances, motion, pose, K).

Entry points: :class:`SynthConfig`, :class:`SyntheticSequence` (iterate for per-frame dicts),
:func:`iterate_frames` (in memory), :func:`generate_sequence` (folder and/or ROS 2 bag).
"""
from .world import GENERATOR_VERSION, SynthConfig, SyntheticSequence, iterate_frames, parse_size
from .writer import generate_sequence, write_sequence

__all__ = ["GENERATOR_VERSION", "SynthConfig", "SyntheticSequence", "iterate_frames", "parse_size",
           "generate_sequence", "write_sequence"]
