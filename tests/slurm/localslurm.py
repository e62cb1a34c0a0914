"""A throwaway one-node SLURM cluster on 127.0.0.1, for tests of the SLURM profile.

Starts a private ``munged`` (own key and socket), ``slurmctld`` and ``slurmd`` in the
foreground as child processes, with every file (configuration, state, spool, logs) under
one directory. Client commands (``sbatch``, ``squeue``, ``scontrol``) reach this cluster
through the ``SLURM_CONF`` variable in :meth:`LocalSlurm.env`; nothing under ``/etc`` is
read or written. :meth:`LocalSlurm.stop` cancels the jobs and ends the daemons by the
process ids it started.

The node has ``CPUs=2``, partitions ``cpu`` (default) and ``gpu`` and one fake GPU
(``Gres=gpu:fake:1`` backed by ``/dev/null``). There is no slurmdbd, so ``sacct`` does not
work: job records are read with ``scontrol show job`` (kept ``MinJobAge`` = 15 min) and
the ``jobcomp/filetxt`` log.

Needs root and the Debian packages ``slurm-wlm`` and ``munge`` (``.ci/slurm-setup.sh``).
Command line, for trying the profile by hand::

    python tests/slurm/localslurm.py start /tmp/cluster   # prints 'export SLURM_CONF=...'
    python tests/slurm/localslurm.py stop /tmp/cluster
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel")


class ClusterUnavailable(RuntimeError):
    """The local cluster cannot be started here (not root, binaries missing, ...)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _machine_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ClusterUnavailable("cannot read MemTotal from /proc/meminfo")


def parse_scontrol_records(text: str) -> list[dict[str, str]]:
    """Parse ``scontrol show ... -o`` output: one record per line, ``Key=Value`` fields.

    Values never contain spaces in the fields used here (JobId, Partition, Comment,
    JobState, TimeLimit, TresPerJob, MinMemoryNode, NumCPUs).
    """
    records = []
    for line in text.splitlines():
        fields = dict(re.findall(r"(\S+?)=(\S*)", line))
        if fields:
            records.append(fields)
    return records


class LocalSlurm:
    """A one-node SLURM cluster living in ``root``.

    Parameters
    ----------
    root : Path
        Empty (or absent) directory for configuration, state, spool and logs.
    cpus : int
        CPUs of the node as SLURM sees them (need not match the machine).
    real_memory_mb : int, optional
        Memory of the node in MB; defaults to the machine's MemTotal.
    """

    def __init__(self, root: Path, cpus: int = 2, real_memory_mb: int | None = None):
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.real_memory_mb = real_memory_mb
        self.conf = self.root / "etc" / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}

    # -- environment -----------------------------------------------------------------
    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment in which SLURM client commands talk to this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        for key in [k for k in env if k.startswith(("SLURM_JOB", "SLURM_STEP"))]:
            del env[key]  # not inside any job of another cluster
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        """Run a SLURM client command against this cluster and return its stdout."""
        res = subprocess.run(
            list(args), env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res.stdout

    # -- start / stop ----------------------------------------------------------------
    def _check_prerequisites(self) -> dict[str, str]:
        if os.name != "posix" or os.geteuid() != 0:
            raise ClusterUnavailable("the local SLURM cluster needs root (slurmd runs jobs)")
        paths = {name: shutil.which(name) for name in DAEMONS + CLIENTS}
        missing = [name for name, path in paths.items() if path is None]
        if missing:
            raise ClusterUnavailable(
                f"SLURM/munge binaries not found: {', '.join(missing)} "
                "(install with .ci/slurm-setup.sh: apt-get install slurm-wlm munge)"
            )
        return paths

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "wb")
        self.procs[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            cwd=self.root,
            start_new_session=True,
        )
        log.close()
        (self.root / "run" / f"{name}.child-pid").write_text(str(self.procs[name].pid))

    def _wait(self, what: str, ok, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise ClusterUnavailable(
                        f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                        + self.log_tail(name)
                    )
            if ok():
                return
            time.sleep(0.2)
        raise ClusterUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        """Last lines of a daemon's log files (for error messages)."""
        out = []
        for path in sorted((self.root / "log").glob(f"{name}*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def start(self, timeout: float = 60) -> LocalSlurm:
        """Start munged, slurmctld and slurmd; return when the node is idle.

        Raises
        ------
        ClusterUnavailable
            When a prerequisite is missing or a daemon fails to start; the daemons
            started so far are stopped first.
        """
        paths = self._check_prerequisites()
        try:
            self._start(paths, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, paths: dict[str, str], timeout: float) -> None:
        for sub in ("bin", "etc", "state", "spool", "log", "run", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munged wants its socket directory reachable
        (self.root / "munge").chmod(0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        sock_dir = self.root / "run"
        sock_dir.chmod(0o755)
        munge_socket = sock_dir / "munge.socket"

        mem = self.real_memory_mb or max(_machine_memory_mb() - 256, 1024)
        values = {
            "root": str(self.root),
            "ctld_port": _free_port(),
            "slurmd_port": _free_port(),
            "munge_socket": str(munge_socket),
            "cpus": self.cpus,
            "real_memory": mem,
        }
        for name in ("slurm.conf", "gres.conf"):
            template = Template((HERE / f"{name}.in").read_text())
            (self.root / "etc" / name).write_text(template.substitute(values))

        # snakemake-executor-plugin-slurm-jobstep (0.6.1) removes every SLURM_* variable,
        # SLURM_CONF included, before its nested `srun`; that srun would then look for
        # /etc/slurm/slurm.conf. This wrapper, first in PATH, puts SLURM_CONF back.
        wrapper = self.root / "bin" / "srun"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'export SLURM_CONF="${{SLURM_CONF:-{self.conf}}}"\n'
            f'exec {paths["srun"]} "$@"\n'
        )
        wrapper.chmod(0o755)

        self._spawn(
            "munged",
            [
                paths["munged"],
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={munge_socket}",
                f"--pid-file={self.root / 'run' / 'munged.pidfile'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={self.root / 'munge' / 'seed'}",
            ],
        )
        self._wait("the munge socket", munge_socket.exists, timeout)

        self._spawn("slurmctld", [paths["slurmctld"], "-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", self._controller_up, timeout)

        self._spawn("slurmd", [paths["slurmd"], "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait("the node to become idle", self._node_idle, timeout)

    def _controller_up(self) -> bool:
        try:
            return "UP" in self.run("scontrol", "ping", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False

    def _node_idle(self) -> bool:
        try:
            state = self.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return state.strip().splitlines()[:1] == ["idle"]

    def stop(self, timeout: float = 20) -> None:
        """Cancel all jobs, then end slurmd, slurmctld and munged by their process ids."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--full", "--user", "root", check=False, timeout=10)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    states = self.run("squeue", "-h", "-o", "%T", check=False, timeout=10)
                    if not {"RUNNING", "COMPLETING"} & set(states.split()):
                        break
                    time.sleep(0.5)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for name in reversed(DAEMONS):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self.procs.clear()

    # -- job records -----------------------------------------------------------------
    def jobs(self) -> list[dict[str, str]]:
        """All jobs the controller still knows (``scontrol show job -o``), oldest first."""
        text = self.run("scontrol", "show", "job", "-o")
        records = [r for r in parse_scontrol_records(text) if "JobId" in r]
        return sorted(records, key=lambda r: int(r["JobId"]))

    def jobcomp(self) -> list[dict[str, str]]:
        """Completion records written by ``jobcomp/filetxt`` (one per finished job)."""
        path = self.root / "log" / "jobcomp.txt"
        return parse_scontrol_records(path.read_text()) if path.exists() else []


def _main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__)
        return 2
    root = Path(argv[2]).resolve()
    if argv[1] == "start":
        cluster = LocalSlurm(root)
        cluster.start()
        pids = {name: proc.pid for name, proc in cluster.procs.items()}
        (root / "run" / "pids.json").write_text(json.dumps(pids))
        # Leave the daemons running after this process exits.
        cluster.procs.clear()
        print(f"export SLURM_CONF={cluster.conf} PATH={root / 'bin'}:$PATH")
        return 0
    pids = json.loads((root / "run" / "pids.json").read_text())
    env = {**os.environ, "SLURM_CONF": str(root / "etc" / "slurm.conf")}
    subprocess.run(["scancel", "--user", "root"], env=env, check=False)
    for name in reversed(DAEMONS):
        if name in pids:
            try:
                os.kill(pids[name], signal.SIGTERM)
            except ProcessLookupError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
