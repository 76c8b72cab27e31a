"""Health of the parties: a raw gRPC probe of a player's TF server and the driver's :class:`Watchdog`,
which aborts the driver with a clear error when a party dies or stops answering."""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Callable, Dict, Optional, Tuple

from .common import DEFAULT_FAILURE_TIMEOUT, EXIT_PARTY_FAILURE

logger = logging.getLogger("tfe_accel.cluster")

def grpc_probe(host: str, port: int, timeout: float) -> Optional[str]:
    """None when the TF server at host:port answers a WorkerService.GetStatus RPC in time.

    This is an application-level check: a process that is stopped or wedged still has its port
    accepted by the kernel, but does not answer the RPC. Returns a short reason otherwise.
    """
    import grpc

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    channel = grpc.insecure_channel(target)
    try:
        call = channel.unary_unary(
            "/tensorflow.WorkerService/GetStatus",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        call(b"", timeout=timeout)  # GetStatusRequest has no fields: its encoding is empty
        return None
    except grpc.RpcError as exc:
        code = exc.code()
        return f"{code.name.lower() if code else 'error'}: {exc.details()}"
    except Exception as exc:  # pragma: no cover - defensive
        return str(exc)
    finally:
        channel.close()


class Watchdog(threading.Thread):
    """Probes every party; aborts the driver when one stays unresponsive for `failure_timeout` s.

    TF's eager remote calls have no deadline: when a party dies or becomes unreachable in the
    middle of a step, the driver can block forever inside C++ where Python cannot interrupt it. The
    watchdog therefore ends the process (``os._exit(EXIT_PARTY_FAILURE)``) after logging which party
    failed and since when. Checkpoints are never torn: use :meth:`critical` around a checkpoint write
    and the abort waits for it (up to `failure_timeout`).

    ``on_failure(message)`` replaces the exit (tests, embedding); it runs once, on the watchdog thread.
    """

    def __init__(
        self,
        addresses: Dict[str, Tuple[str, int]],
        failure_timeout: float = DEFAULT_FAILURE_TIMEOUT,
        interval: Optional[float] = None,
        on_failure: Optional[Callable[[str], None]] = None,
    ):
        super().__init__(name="tfe-accel-watchdog", daemon=True)
        if failure_timeout <= 0:
            raise ValueError("failure_timeout must be > 0 seconds")
        self.addresses = dict(addresses)
        self.failure_timeout = float(failure_timeout)
        self.interval = interval if interval is not None else min(1.0, self.failure_timeout / 5)
        self.probe_timeout = max(0.2, min(5.0, self.failure_timeout / 3))
        self.on_failure = on_failure
        self.failure: Optional[str] = None
        self._halt = threading.Event()
        self._critical = threading.Lock()
        self._failing_since: Dict[str, float] = {}
        self._reasons: Dict[str, str] = {}

    def stop(self) -> None:
        self._halt.set()

    def critical(self):
        """Context manager: the watchdog does not abort the process while it is held."""
        return self._critical

    def check_once(self) -> Optional[str]:
        """Probe every party once; return a failure message once one is past the timeout."""
        now = time.monotonic()
        for name, (host, port) in self.addresses.items():
            reason = grpc_probe(host, port, self.probe_timeout)
            if reason is None:
                self._failing_since.pop(name, None)
                continue
            since = self._failing_since.setdefault(name, now)
            self._reasons[name] = reason
            if now - since >= self.failure_timeout:
                return (
                    f"party {name!r} at {host}:{port} has not answered for {now - since:.1f} s "
                    f"(failure timeout {self.failure_timeout:g} s; last probe: {reason}). It died or "
                    "became unreachable; stopping the driver instead of waiting forever. "
                    "Restart the party and rerun with --resume to continue from the last checkpoint."
                )
        return None

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            msg = self.check_once()
            if msg is None:
                continue
            self.failure = msg
            if self._halt.is_set():
                return
            logger.error("%s", msg)
            if self.on_failure is not None:
                self.on_failure(msg)
                return
            # Let a checkpoint being written finish (bounded), then end the process.
            self._critical.acquire(timeout=self.failure_timeout)
            try:
                sys.stderr.write(f"tfe-accel: error: {msg}\n")
                sys.stderr.flush()
                sys.stdout.flush()
            finally:
                os._exit(EXIT_PARTY_FAILURE)
