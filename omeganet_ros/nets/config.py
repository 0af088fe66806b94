"""The architecture record of a network: the constructor arguments that define it, declared by the network itself.

Every network a checkpoint can hold derives from :class:`ConfiguredNet` and hands the arguments
its architecture depends on to ``super().__init__(**config)``; :meth:`ConfiguredNet.config` gives
them back as plain values (numbers, strings, lists), which ``omeganet_ros.checkpoint`` saves as the
network's ``kwargs`` and passes to the constructor again when it loads the file. Nothing is found by
looking at attributes: what is recorded is what the network was built with.
"""
from __future__ import annotations

import copy

import torch.nn as nn

_SCALARS = (bool, int, float, str, type(None))


def _plain(network: str, name: str, value):
    """A constructor argument as a plain value (tuples become lists); a TypeError names what cannot be recorded."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return list(value)
    raise TypeError(f"{network}: constructor argument {name}={value!r} is not a plain value (number, string, "
                    "or a list of them) and cannot be recorded in a checkpoint")


class ConfiguredNet(nn.Module):
    """An ``nn.Module`` that records its architecture: ``super().__init__(name=value, ...)`` with every
    constructor argument that changes the network's layers or outputs; :meth:`config` returns them so that
    ``type(net)(**net.config())`` builds the same network (same parameter names and shapes).

    ``defaults_of_older_records``: constructor arguments added after checkpoints were written, with the value
    a record without them was built with (the loader fills them in, so an older file keeps its behaviour even
    where the new default differs)."""

    defaults_of_older_records: dict = {}

    def __init__(self, **config):
        super().__init__()
        self._architecture_config = {name: _plain(type(self).__name__, name, value) for name, value in config.items()}

    def config(self) -> dict:
        """The constructor arguments this network was built with, as plain values (a copy)."""
        return copy.deepcopy(self._architecture_config)
