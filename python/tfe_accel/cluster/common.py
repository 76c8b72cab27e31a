"""Names, limits and errors shared by the cluster modules."""
from __future__ import annotations

JOB_NAME = "tfe"  # TF Encrypted's RemoteConfig default job name
DEFAULT_CONNECT_TIMEOUT = 60.0  # seconds to wait for every player's port + the handshake
DEFAULT_FAILURE_TIMEOUT = 20.0  # seconds a party may stay unresponsive before the driver aborts
EXIT_PARTY_FAILURE = 75  # exit status of a driver aborted by the watchdog (EX_TEMPFAIL: retry later)

# Build fields that must agree between the driver and every party. Whether CUDA kernels are built
# may differ (a GPU party and a CPU-only driver run the same op definitions); placement reads it.
BUILD_FIELDS = ("version", "tf_version", "tf_running", "cxx11_abi", "compiler")


class ClusterConfigError(ValueError):
    """The cluster file (or a player name / address in it) is invalid."""


class ClusterError(RuntimeError):
    """Connecting to, or running on, the cluster failed."""


class PartyFailureError(ClusterError):
    """A party died or stopped answering."""


class ClusterVersionError(ClusterError):
    """The parties do not all run the same tfe-accel build and TF version (or lack our ops)."""
