"""Session fixtures of the distributed tests: a Ray cluster of separate processes on loopback (a head with the job
server and a second node with its own resources), and a PostgreSQL server in a temp folder. One of each per session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

WORKER_NODE_RESOURCE = "worker_node"
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps every Ray process and address on loopback (with 1 the GCS advertises
# the machine's address), but `ray start` then refuses a second node: RAY_NODE tells only that check of the CLI
# that clusters are enabled.
# A killed node is declared dead after about 3 s instead of 30 s, so its tasks are retried elsewhere quickly.
RAY_HEAD = [str(Path(sys.executable).parent / "ray")]
RAY_NODE = [
    sys.executable,
    "-c",
    "import sys, types, ray._private.ray_constants as constants; from ray.scripts import scripts; "
    "scripts.ray_constants = types.SimpleNamespace(**{**vars(constants), 'ENABLE_RAY_CLUSTER': True}); "
    "sys.argv[0] = 'ray'; scripts.main()",
]
RAY_PROCESS_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "4",
    "RAY_USAGE_STATS_ENABLED": "0",
}
START_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RayNode:
    """One ``ray start --block`` process: its raylet and agents in its process group, its workers below it."""

    process: subprocess.Popen
    resources: dict[str, float]

    def kill(self) -> None:
        """SIGKILL the whole node at once, as a machine failure would: its process group and every descendant (the
        raylet puts its workers in process groups of their own)."""
        import psutil

        if self.process.poll() is not None:
            return
        descendants = psutil.Process(self.process.pid).children(recursive=True)
        os.killpg(self.process.pid, signal.SIGKILL)
        for process in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process.wait(timeout=30)


@dataclass
class RayCluster:
    """A Ray cluster of separate processes on 127.0.0.1."""

    temp_dir: Path
    gcs_port: int
    client_port: int
    dashboard_port: int
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def client_address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_head(self) -> RayNode:
        """The head: GCS, Ray Client server and dashboard (the job server), one CPU."""
        return self._start(
            [
                "--head",
                f"--port={self.gcs_port}",
                f"--ray-client-server-port={self.client_port}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
            ],
            {},
        )

    def add_node(self, resources: dict[str, float]) -> RayNode:
        """A further node of one CPU and ``resources``, joined to the head."""
        return self._start([f"--address={self.gcs_address}", f"--resources={json.dumps(resources)}"], resources)

    def _start(self, role_args: list[str], resources: dict[str, float]) -> RayNode:
        command = [
            *(RAY_HEAD if "--head" in role_args else RAY_NODE),
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            f"--object-store-memory={256 * 2**20}",
            f"--temp-dir={self.temp_dir}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
            *role_args,
        ]
        with open(self.temp_dir / f"node-{len(self.nodes)}.log", "wb") as log:  # the node writes to its own copy
            process = subprocess.Popen(
                command,
                env={**os.environ, **RAY_PROCESS_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = RayNode(process, resources)
        self.nodes.append(node)
        self.wait_for_nodes(len([n for n in self.nodes if n.process.poll() is None]))
        return node

    def alive_nodes(self) -> list:
        """The alive nodes, as the dashboard's state API lists them (empty while it is not up)."""
        from ray.util.state import list_nodes

        try:
            return [n for n in list_nodes(address=self.dashboard_url, timeout=5) if n.state == "ALIVE"]
        except Exception:  # the dashboard is not serving yet
            return []

    def node_id(self, resource: str) -> str:
        """ID of the alive node that has ``resource``."""
        return next(n.node_id for n in self.alive_nodes() if resource in n.resources_total)

    def head_node_id(self) -> str:
        return next(n.node_id for n in self.alive_nodes() if n.is_head_node)

    def wait_for_nodes(self, count: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(self.alive_nodes()) != count:
            dead = [n for n in self.nodes if n.process.poll() is not None and n.process.returncode != -signal.SIGKILL]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in sorted(self.temp_dir.glob("node-*.log")))
                raise RuntimeError(f"Ray cluster did not reach {count} nodes:\n{logs}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Kill every node (nothing of a test cluster needs a graceful stop) and remove the temp folder."""
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A head (job server on the dashboard port) and a second node with the ``worker_node`` resource, one CPU each."""
    temp_dir = Path(tempfile.mkdtemp(prefix="g4s-rc-", dir="/tmp"))  # short: Ray's socket paths are length-limited
    cluster = RayCluster(temp_dir, free_port(), free_port(), free_port())
    try:
        cluster.start_head()
        cluster.add_node({WORKER_NODE_RESOURCE: 1})
        yield cluster
    finally:
        cluster.stop()


@dataclass
class PostgresServer:
    """A PostgreSQL server of Debian's package, run by the ``postgres`` user from a temp folder on loopback."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        """URL of a new empty database ``name`` (one per test that needs a clean instance)."""
        self.as_postgres(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", f"CREATE DATABASE {name}"]
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def as_postgres(self, command: list[str]) -> None:
        binary = str(postgres_bin_dir() / command[0])
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, binary, *command[1:]], check=True, capture_output=True, timeout=120)


def postgres_bin_dir() -> Path:
    """The server binaries of Debian's ``postgresql`` package; the package is installed first when missing."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env, timeout=600)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "postgresql"], check=True, env=env, timeout=600)
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on a free loopback port, trust authentication, data in a temp folder; one per session."""
    folder = Path(tempfile.mkdtemp(prefix="g4s-pg-", dir="/tmp"))
    server = PostgresServer(folder / "data", free_port())
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "postgres")
    try:
        server.as_postgres(["initdb", "-D", str(server.data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8"])
        options = f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        server.as_postgres(
            ["pg_ctl", "-D", str(server.data_dir), "-o", options, "-l", str(folder / "log"), "-w", "start"]
        )
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            server.as_postgres(["pg_ctl", "-D", str(server.data_dir), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)
