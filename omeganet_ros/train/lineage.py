"""Training lineage: which stage trained which part of a checkpoint, and so which outputs are meaningful.

The trainer records ``networks_trained_by_stage`` ({"dsnet": 1, "camnet": 1, "ofnet": None, …}) and
``semantic_head_trained_by_stage`` (None when DSNet learnt without proxy labels) in every checkpoint's
provenance; a stage-1 checkpoint still holds a randomly initialised OFNet, and its flow is noise.
"""
from __future__ import annotations

# What each part of the model produces: an untrained part makes these outputs meaningless.
OUTPUTS_OF = {"dsnet": ("depth", "semantic", "motion"), "camnet": ("ego_motion", "intrinsics", "motion"),
              "ofnet": ("flow", "motion"), "semantic_head": ("semantic", "motion"),
              "moreau": ("depth", "ego_motion", "instance")}


def untrained_outputs(provenance: dict) -> list[str] | None:
    """Outputs that come from networks still at their random initialisation, per the training lineage the
    trainer records (``networks_trained_by_stage``, ``semantic_head_trained_by_stage``); [] when everything was
    trained, None when the checkpoint does not say (imported or older files)."""
    lineage = provenance.get("networks_trained_by_stage")
    if not isinstance(lineage, dict):
        return None
    parts = [name for name in ("dsnet", "camnet", "ofnet") if name in lineage and lineage[name] is None]
    if lineage.get("moreau", 1) is None or lineage.get("posenet", 1) is None:  # the Moreau model (never partly trained)
        parts.append("moreau")
    if "dsnet" in lineage and "semantic_head_trained_by_stage" in provenance and \
            provenance["semantic_head_trained_by_stage"] is None:
        parts.append("semantic_head")
    return sorted({output for part in parts for output in OUTPUTS_OF[part]})
