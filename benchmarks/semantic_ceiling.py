"""The semantic mIoU ceiling of a half-resolution head (the authors' DSNet predicts at H/2 × W/2): the ground truth
through a nearest-neighbour round trip to half resolution, scored against itself; prints JSON (issue 13).

    python benchmarks/semantic_ceiling.py
"""
import json

import cv2
import numpy as np

from omeganet_ros.synth import iterate_frames
from omeganet_ros.evaluate import SemanticEvaluator
ev = SemanticEvaluator()
for seed in (201, 202):
    for f in iterate_frames(frames=40, seed=seed, size=(320, 96)):
        gt = f["semantic"]
        half = cv2.resize(gt.astype(np.uint8), (160, 48), interpolation=cv2.INTER_NEAREST)
        up = cv2.resize(half, (320, 96), interpolation=cv2.INTER_NEAREST)
        ev.add(up, gt)
print(json.dumps({"semantic_miou_ceiling_half_resolution_head": ev.result()["miou"], "size": [320, 96], "seeds": [201, 202], "frames": 40}))
