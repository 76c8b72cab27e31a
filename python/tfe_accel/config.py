"""In-process TFE configurations whose players are *distinct* TF devices.

Stock ``tfe.LocalConfig`` puts every player on ``CPU:0``, so nothing in the graph says which party
an op belongs to and no transfer between parties exists. ``PartitionedLocalConfig`` splits the
host CPU into one logical TF device per player (``CPU:0``, ``CPU:1``, ...): each party's ops and
shares then live on their own device, every value crossing parties is a real device-to-device
transfer, and communication accounting and isolation checks can read the graph
(tfe_accel.accounting). Computation results are identical to LocalConfig.
"""
from __future__ import annotations

import logging
from typing import Sequence

import tensorflow as tf
import tf_encrypted as tfe

from ._loader import set_logical_cpus

logger = logging.getLogger("tfe_accel")

# The three compute servers of ABY3, by name: the one definition every module uses.
SERVERS = ("server0", "server1", "server2")
DEFAULT_PLAYERS = SERVERS
_DEVICE = "/job:localhost/replica:0/task:0/device:CPU:{}"


def ensure_logical_cpus(n: int) -> int:
    """Split the first physical CPU into at least `n` logical devices; returns how many exist.

    TF allows this only before its runtime initialises. If it already has, and fewer than `n`
    logical CPUs exist, raises RuntimeError saying to create the config first thing.
    """
    cpus = tf.config.list_physical_devices("CPU")
    configured = tf.config.get_logical_device_configuration(cpus[0])
    have = len(configured) if configured else 1
    if have >= n:
        return have
    try:
        set_logical_cpus(n)
    except RuntimeError as exc:
        raise RuntimeError(
            f"PartitionedLocalConfig needs {n} logical CPU devices, but TensorFlow's runtime is "
            f"already initialised with {have}. Create the config (or call "
            f"tfe_accel.config.ensure_logical_cpus({n})) before running any TensorFlow op."
        ) from exc
    return n


class PartitionedLocalConfig(tfe.LocalConfig):
    """Like ``tfe.LocalConfig`` but each player gets its own logical CPU device."""

    def __init__(self, player_names: Sequence[str] = DEFAULT_PLAYERS, job_name="localhost",
                 auto_add_unknown_players=True, debug_mode=False, num_devices=None):
        self._num_devices = num_devices or max(len(player_names), 3)
        ensure_logical_cpus(self._num_devices)
        super().__init__(list(player_names), job_name, auto_add_unknown_players, debug_mode)

    def add_player(self, name):
        player = super().add_player(name)
        if player.index >= self._num_devices:
            self._num_devices = ensure_logical_cpus(player.index + 1)
        player.device_name = _DEVICE.format(player.index).replace("localhost", self._job_name)
        return player
