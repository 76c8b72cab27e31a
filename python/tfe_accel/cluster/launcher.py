"""The players of one machine as child processes: ``tfe-accel serve`` command lines, pid files and
:class:`LocalCluster` (``tfe-accel cluster up|down|status``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .common import ClusterConfigError, ClusterError, DEFAULT_CONNECT_TIMEOUT
from .config import check_port_free, is_local_host, load_config, wait_for_ports

def serve_command(config_path, player: str, cpu_only: bool = True, exit_with_parent: bool = False,
                  python: Optional[str] = None, tls_dir=None) -> List[str]:
    cmd = [python or sys.executable, "-m", "tfe_accel", "serve", "--config", str(config_path),
           "--player", player]
    if tls_dir:
        cmd += ["--tls-dir", str(tls_dir)]
    if cpu_only:
        cmd.append("--cpu-only")
    if exit_with_parent:
        cmd.append("--exit-with-parent")
    return cmd


def default_pid_file(config_path) -> Path:
    p = Path(config_path).resolve()
    return p.with_name(f".{p.stem}.pids.json")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def is_our_server(pid: int, player: str) -> bool:
    """Whether `pid` is still the `tfe-accel serve --player <player>` we started (not a reused pid)."""
    args = _cmdline(pid)
    return "serve" in args and "--player" in args and player in args


def _tail(path: Optional[Path], n: int = 15) -> str:
    if not path or not Path(path).exists():
        return ""
    lines = Path(path).read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in lines[-n:])


@dataclass
class LocalCluster:
    """The players of one machine as child processes (`tfe-accel cluster up`).

    ``exit_with_parent=True`` ties the servers' lifetime to this process (Linux parent-death
    signal), so that a crashed test or launcher cannot leave them behind.
    """

    config_path: Path
    players: Optional[Sequence[str]] = None
    pid_file: Optional[Path] = None
    log_dir: Optional[Path] = None
    cpu_only: bool = True
    exit_with_parent: bool = False
    tls_dir: Optional[Path] = None  # mutual TLS between the players (`tfe-accel serve --tls-dir`)
    env: Optional[Dict[str, str]] = None
    commands: Dict[str, List[str]] = field(default_factory=dict)  # player -> override command
    procs: Dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self):
        self.config_path = Path(self.config_path).resolve()
        self.config = load_config(self.config_path)
        self.players = list(self.players or self.config.players)
        for p in self.players:
            self.config.check_player(p)
        if self.pid_file is None:
            self.pid_file = default_pid_file(self.config_path)
        self.pid_file = Path(self.pid_file)
        if self.log_dir is None:
            self.log_dir = self.pid_file.parent / f"{self.config_path.stem}-logs"
        self.log_dir = Path(self.log_dir)

    def log_path(self, player: str) -> Path:
        return self.log_dir / f"{player}.log"

    def up(self, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Dict[str, int]:
        """Start the players, wait until all accept connections; on any failure stop them all."""
        self._others = {}
        if self.pid_file.exists():
            alive = {p: e for p, e in read_pid_file(self.pid_file).items()
                     if pid_alive(e["pid"]) and is_our_server(e["pid"], p)}
            running = {p: e["pid"] for p, e in alive.items() if p in self.players}
            # players started earlier and still running stay in the pid file (restart one party)
            self._others = {p: e for p, e in alive.items() if p not in self.players}
            if running:
                raise ClusterError(
                    f"{self.pid_file} lists running servers ({', '.join(f'{p}: pid {q}' for p, q in running.items())}); "
                    "run `tfe-accel cluster down` first"
                )
        for p in self.players:
            host, port = self.config.address(p)
            if not is_local_host(host):
                raise ClusterConfigError(
                    f"player {p!r} is on {host}, not this machine: start it there with "
                    f"`tfe-accel serve`, or pass --players with this machine's players"
                )
            check_port_free(p, host, port)
        try:
            self._spawn_all()
            wait_for_ports(
                {p: self.config.address(p) for p in self.players}, timeout, alive=self._dead_message
            )
        except BaseException:
            self.down()
            raise
        return self.pids

    def _spawn_all(self) -> None:
        """Start every player (fresh logs) and record the pids."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for p in self.players:
            self.log_path(p).write_text("")
            self._spawn(p)
        self._write_pid_file()

    def _spawn(self, p: str) -> None:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cmd = self.commands.get(p) or serve_command(
            self.config_path, p, cpu_only=self.cpu_only, exit_with_parent=self.exit_with_parent,
            tls_dir=self.tls_dir,
        )
        with open(self.log_path(p), "a") as log:
            self.procs[p] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=not self.exit_with_parent, close_fds=True,
            )

    def restart(self, player: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> int:
        """Start `player` again (after it died or was stopped); wait until its port accepts."""
        old = self.procs.get(player)
        if old is not None and old.poll() is None:
            stop_pids({player: old.pid}, procs={player: old})
        self._spawn(player)
        self._write_pid_file()
        wait_for_ports({player: self.config.address(player)}, timeout, alive=self._dead_message)
        return self.procs[player].pid

    @property
    def pids(self) -> Dict[str, int]:
        return {p: proc.pid for p, proc in self.procs.items()}

    def _dead_message(self) -> Optional[str]:
        for p, proc in self.procs.items():
            rc = proc.poll()
            if rc is not None:
                return (
                    f"player {p!r} exited with status {rc} while starting; its log "
                    f"({self.log_path(p)}) ends with:\n{_tail(self.log_path(p))}"
                )
        return None

    def _write_pid_file(self) -> None:
        players = dict(getattr(self, "_others", {}))
        players.update({
            p: {"pid": proc.pid, "address": self.config.hostmap[p], "log": str(self.log_path(p))}
            for p, proc in self.procs.items()
        })
        data = {"config": str(self.config_path), "players": players}
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.pid_file)

    def kill(self, player: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one player (tests: a party failing mid-run)."""
        self.procs[player].send_signal(sig)

    def down(self, grace: float = 10.0) -> Dict[str, str]:
        """Stop exactly the processes we started (SIGTERM, then SIGKILL after `grace` s)."""
        result = stop_pids({p: proc.pid for p, proc in self.procs.items()}, grace, procs=self.procs)
        self.procs.clear()
        others = getattr(self, "_others", {})
        if others:
            self._write_pid_file()
        elif self.pid_file.exists():
            self.pid_file.unlink()
        return result

    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down()


def read_pid_file(path) -> Dict[str, dict]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ClusterError(f"no pid file {path}: no cluster was started with this config") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ClusterError(f"cannot read pid file {path}: {exc}") from None
    return data.get("players", {})


def stop_pids(pids: Dict[str, int], grace: float = 10.0, procs=None) -> Dict[str, str]:
    """SIGTERM each still-running server we started, SIGKILL after `grace` s; reap our children."""
    procs = procs or {}
    result = {}
    targets = {}
    for p, pid in pids.items():
        proc = procs.get(p)
        if proc is not None and proc.poll() is not None:
            result[p] = f"already exited ({proc.returncode})"
        elif proc is None and not (pid_alive(pid) and is_our_server(pid, p)):
            result[p] = "not running"
        else:
            try:
                os.kill(pid, signal.SIGTERM)
                targets[p] = pid
            except ProcessLookupError:
                result[p] = "not running"

    def gone(p, pid):
        proc = procs.get(p)
        if proc is not None:
            return proc.poll() is not None
        return not pid_alive(pid)

    deadline = time.monotonic() + grace
    while targets and time.monotonic() < deadline:
        for p, pid in list(targets.items()):
            if gone(p, pid):
                result[p] = "stopped"
                del targets[p]
        time.sleep(0.1)
    for p, pid in targets.items():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if p in procs:
            procs[p].wait(timeout=10)
        result[p] = "killed (did not stop within {:g} s)".format(grace)
    return result
