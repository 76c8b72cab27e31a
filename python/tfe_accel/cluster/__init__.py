"""Running the ABY3 parties as separate processes on TensorFlow's distributed runtime.

The cluster file is TF Encrypted's ``RemoteConfig`` JSON: an ordered object ``{player: "host:port"}``.
Player ``i`` (in file order) is task ``i`` of the TF job ``tfe`` (what ``RemoteConfig`` uses), so its
device is ``/job:tfe/replica:0/task:i/device:CPU:0``. Each player is one ``tfe-accel serve`` process
(:mod:`tfe_accel.cli.serve`), which loads tfe-accel's op library *before* its TF server starts.

The driver side is :func:`connect`: it waits for every player's port, connects TF's eager runtime to
them, checks that every party runs the same tfe-accel build and TF version (by running the
``TfeAccelBuildInfo`` op on each party's device), and starts a :class:`Watchdog` that aborts the driver
with a clear error when a party dies or stops answering, instead of letting a TF remote call block
forever.

:class:`LocalCluster` starts and stops the players of one machine as child processes (``tfe-accel
cluster up|down|status``).

Modules: ``common`` (names, limits, errors), ``config`` (the cluster file, ports), ``health``
(gRPC probe, watchdog), ``driver`` (connect, version handshake, failure reports), ``launcher``
(serve command lines, pid files, LocalCluster). Everything public is importable from here.
"""
from .common import (  # noqa: F401
    BUILD_FIELDS,
    ClusterConfigError,
    ClusterError,
    ClusterVersionError,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_FAILURE_TIMEOUT,
    EXIT_PARTY_FAILURE,
    JOB_NAME,
    PartyFailureError,
)
from .config import (  # noqa: F401
    ClusterConfig,
    check_port_free,
    free_ports,
    is_local_host,
    is_loopback,
    load_config,
    make_local_config,
    parse_address,
    port_accepts,
    validate_hostmap,
    wait_for_ports,
)
from .health import (  # noqa: F401
    Watchdog,
    grpc_probe,
)
from .driver import (  # noqa: F401
    barrier,
    check_tls_peers,
    compare_builds,
    connect,
    dead_parties,
    explain_failure,
    guard,
    local_build_info,
    remote_build_infos,
)
from .launcher import (  # noqa: F401
    LocalCluster,
    default_pid_file,
    is_our_server,
    pid_alive,
    read_pid_file,
    serve_command,
    stop_pids,
)

__all__ = [
    "BUILD_FIELDS",
    "ClusterConfig",
    "ClusterConfigError",
    "ClusterError",
    "ClusterVersionError",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_FAILURE_TIMEOUT",
    "EXIT_PARTY_FAILURE",
    "JOB_NAME",
    "LocalCluster",
    "PartyFailureError",
    "Watchdog",
    "barrier",
    "check_port_free",
    "check_tls_peers",
    "compare_builds",
    "connect",
    "dead_parties",
    "default_pid_file",
    "explain_failure",
    "free_ports",
    "grpc_probe",
    "guard",
    "is_local_host",
    "is_loopback",
    "is_our_server",
    "load_config",
    "local_build_info",
    "make_local_config",
    "parse_address",
    "pid_alive",
    "port_accepts",
    "read_pid_file",
    "remote_build_infos",
    "serve_command",
    "stop_pids",
    "validate_hostmap",
    "wait_for_ports",
]
