"""A throwaway single-node SLURM cluster on localhost, for tests.

`LocalSlurm` starts munged, slurmctld and slurmd in the foreground as children of this process,
everything under one temporary base directory (configuration, state, spool, logs, the munge key and
socket), on free TCP ports, so it touches no system configuration and does not collide with a
cluster the machine may already belong to. The node offers ``fake_gpus`` GPUs as GRES on harmless
character devices (/dev/null, /dev/zero, ...): jobs that ask for ``--gpus`` are scheduled and run
on the CPU.

Use it as a context manager: `stop()` runs even when the body fails. It cancels the jobs still
queued or running, then stops the daemons by the PIDs it started (SIGTERM, then SIGKILL after a
grace period) together with any process left in their sessions (slurmstepd and job steps), and
waits until they are gone. Every subprocess call has a timeout, so nothing here can hang.

Two details from docs/snakemake-notes (§10-§11) that this setup relies on:
- the slurm-jobstep plugin drops ``SLURM_CONF`` before its inner ``srun``; an ``srun`` shim that
  re-exports it comes first on ``env["PATH"]``;
- there is no slurmdbd, so Snakemake must poll with ``squeue`` (``MinJobAge`` keeps finished jobs
  visible to it), which the ``slurm-ci`` profile sets.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scancel", "scontrol")
INSTALL_HINT = "apt-get install slurm-wlm munge (Debian/Ubuntu; .ci/run does this when it runs as root)"
# Device files of the fake GPUs: slurmd binds each GPU to a file and refuses to give two one file.
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full")


def unavailable_reason() -> str | None:
    """Why a local cluster cannot be started here, or None when it can."""
    missing = [name for name in DAEMONS + CLIENTS if shutil.which(name, path=SBIN_PATH) is None]
    if missing:
        return f"SLURM/munge are not installed (missing: {', '.join(missing)}); install them with {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd runs jobs as their submitter; munged runs as user munge)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "there is no 'munge' user to run munged as (the munge package creates it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def cluster_processes(sids: set[int], marker: bytes) -> list[int]:
    """PIDs of the live processes in one of the sessions ``sids`` or whose environment holds ``marker``.

    slurmd starts slurmstepd in a session of its own, and job steps inherit the submitter's
    environment, so the marker (set for the daemons and for every client of the cluster) is how
    they are found.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":                           # fields: state, ppid, pgrp, session, ...
                continue
            if int(fields[3]) in sids or marker in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                found.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
    return found


class LocalSlurm:
    """munged + slurmctld + slurmd on 127.0.0.1 with ``fake_gpus`` fake GPUs; see the module doc."""

    def __init__(self, base: Path | None = None, fake_gpus: int = 1, start_timeout: float = 60.0):
        # A fresh directory outside pytest's 0700 tmp tree: munged (user munge) must reach its socket.
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="wsjds-slurm-"))
        self.fake_gpus = fake_gpus
        self.start_timeout = start_timeout
        self.host = socket.gethostname().split(".")[0]
        self.cpus = max(2, os.cpu_count() or 1)
        self.procs: dict[str, subprocess.Popen] = {}
        self.started_pids: dict[str, int] = {}
        self.conf = self.base / "slurm.conf"
        self.munge_socket = self.base / "munge" / "munge.socket.2"

    # -- environment for clients (sbatch, squeue, snakemake) --------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus SLURM_CONF, the srun shim first on PATH (and the sbin directories), and the
        marker by which stop() finds every process of this cluster."""
        return dict(os.environ, SLURM_CONF=str(self.conf), PATH=os.pathsep.join([str(self.base / "bin"), SBIN_PATH]),
                    WSJDS_LOCAL_SLURM=str(self.base))

    @property
    def marker(self) -> bytes:
        return f"WSJDS_LOCAL_SLURM={self.base}".encode()

    def command(self, *argv: str, timeout: float = 20.0, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalSlurm:
        # A SIGTERM to the test run (a CI timeout, a kill) would skip `finally` blocks and leave the
        # daemons running; turn it into an exception while the cluster is up, so stop() still runs.
        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    def start(self) -> None:
        try:
            self._write_files()
            self._start_munge()
            self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
            self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
            self._wait_for_idle_node()
        except BaseException:
            self.stop()
            raise

    def _write_files(self) -> None:
        base = self.base
        for sub in ("munge", "state", "spool", "log", "bin"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)
        munge = pwd.getpwnam("munge")
        key = base / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        for path in (base / "munge", key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        (base / "munge").chmod(0o755)

        mem_mb = 2048
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_mb = max(mem_mb, int(int(line.split()[1]) / 1024 * 0.8))
        gres_types, node_gres = "", ""
        if self.fake_gpus:
            gres_types, node_gres = "GresTypes=gpu", f"Gres=gpu:{self.fake_gpus}"
            if self.fake_gpus > len(FAKE_GPU_DEVICES):
                raise ValueError(f"at most {len(FAKE_GPU_DEVICES)} fake GPUs, got {self.fake_gpus}")
            (base / "gres.conf").write_text("".join(f"NodeName={self.host} Name=gpu File={device}\n"
                                                    for device in FAKE_GPU_DEVICES[:self.fake_gpus]))
        self.conf.write_text(f"""\
ClusterName=wsjdsci
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
KillWait=5
DefMemPerCPU=500
MinJobAge=3600
{gres_types}
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={mem_mb} {node_gres} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        shim = base / "bin" / "srun"
        srun = shutil.which("srun", path=SBIN_PATH)
        shim.write_text(f'#!/bin/sh\nexport SLURM_CONF={self.conf}\nexec {srun} "$@"\n')
        shim.chmod(0o755)

    def _spawn(self, name: str, argv: list[str], **kwargs) -> None:
        log = open(self.base / "log" / f"{name}.out", "wb")
        exe = shutil.which(argv[0], path=SBIN_PATH)
        proc = subprocess.Popen([exe, *argv[1:]], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=self.env, start_new_session=True, **kwargs)
        log.close()
        self.procs[name] = proc
        self.started_pids[name] = proc.pid

    def _start_munge(self) -> None:
        munge = pwd.getpwnam("munge")
        d = self.base / "munge"
        self._spawn("munged", ["munged", "--foreground", f"--socket={self.munge_socket}",
                               f"--key-file={d / 'munge.key'}", f"--pid-file={d / 'munged.pid'}",
                               f"--log-file={d / 'munged.log'}", f"--seed-file={d / 'munged.seed'}"],
                    user=munge.pw_uid, group=munge.pw_gid, extra_groups=[], cwd=d)
        self._wait(lambda: self.munge_socket.exists(), "munged to create its socket", "munged")

    def _wait_for_idle_node(self) -> None:
        def idle() -> bool:
            try:
                out = self.command("sinfo", "-h", "-o", "%T", timeout=10, check=False).stdout
            except subprocess.TimeoutExpired:
                return False
            return "idle" in out
        self._wait(idle, "the node to become idle", "slurmctld", "slurmd")

    def _wait(self, ready, what: str, *daemons: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            dead = [d for d in daemons if self.procs[d].poll() is not None]
            if dead or time.monotonic() > deadline:
                problem = f"{', '.join(dead)} exited" if dead else f"timed out after {self.start_timeout:.0f} s"
                raise RuntimeError(f"local SLURM: waiting for {what}: {problem}\n{self.log_tails()}")
            time.sleep(0.3)

    def log_tails(self, lines: int = 15) -> str:
        parts = []
        for log in sorted((self.base / "log").glob("*")) + sorted((self.base / "munge").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log}\n" + "\n".join(text))
        return "\n".join(parts)

    def job_table(self) -> dict[str, dict[str, str]]:
        """Every job slurmctld still knows (finished ones for MinJobAge): id -> its `scontrol show job`
        fields (JobState, Comment, TresPerJob, ExitCode, ...)."""
        out = self.command("scontrol", "show", "job", "--oneliner").stdout
        table = {}
        for line in out.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if "JobId" in fields:
                table[fields["JobId"]] = fields
        return table

    def stop(self, grace: float = 15.0) -> None:
        """Cancel leftover jobs, then stop every process this cluster started, by PID; idempotent."""
        if not self.procs:
            return
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            try:
                active = self.command("squeue", "-h", "-o", "%i", timeout=10, check=False).stdout.split()
                if active:
                    self.command("scancel", *active, timeout=10, check=False)
                    deadline = time.monotonic() + grace
                    while time.monotonic() < deadline and self.command(
                            "squeue", "-h", "-o", "%i", timeout=10, check=False).stdout.split():
                        time.sleep(0.5)
            except (subprocess.TimeoutExpired, OSError):
                pass
        sessions = {proc.pid for proc in self.procs.values()}   # each daemon leads its own session
        for name in ("slurmd", "slurmctld", "munged"):          # reverse start order
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass                                         # reported by alive_pids()
        # Anything left (slurmstepd, job steps, a client of this cluster) goes by PID too.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            leftovers = cluster_processes(sessions, self.marker)
            for pid in leftovers:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while leftovers and time.monotonic() < deadline:
                leftovers = [pid for pid in leftovers if pid_alive(pid)]
                time.sleep(0.1)
        self.procs.clear()

    def alive_pids(self) -> list[int]:
        """PIDs of this cluster's processes (daemons, their sessions, marked processes) still alive."""
        pids = set(self.started_pids.values())
        return sorted(pid for pid in pids | set(cluster_processes(pids, self.marker)) if pid_alive(pid))

    def cleanup(self) -> None:
        """Remove the base directory (after stop())."""
        shutil.rmtree(self.base, ignore_errors=True)


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum} while the local SLURM cluster was up")
