"""Start and stop `gpt4scene ui` (dagster dev) for tests; inspect its process tree and sockets through /proc."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
INSTANCE_YAML = PROJECT_DIR / "dagster_home" / "dagster.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def temp_dagster_home(folder: Path, automation: bool = True) -> Path:
    """A fresh Dagster home holding a copy of the project's instance configuration; ``automation=False`` turns the
    asset daemon off (no rebuild_sensor ticks), for tests that must see only the runs they launch."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(INSTANCE_YAML, folder / "dagster.yaml")
    if not automation:
        with open(folder / "dagster.yaml", "a") as handle:
            handle.write("\nauto_materialize:\n  enabled: false\n  use_sensors: false\n")
    return folder


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening_addresses(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket (v4 and v6) owned by ``pids``."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            address_hex, port_hex = local.split(":")
            found.add((_address(address_hex, width), int(port_hex, 16)))
    return found


def _address(address_hex: str, width: int) -> str:
    raw = bytes.fromhex(address_hex)
    if width == 8:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    # /proc/net/tcp6 stores four host-order 32-bit words
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


@dataclass
class UiServer:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tree(self) -> set[int]:
        return {self.process.pid} | descendants(self.process.pid)


def _as_background_job() -> None:
    """What a non-interactive shell does to `cmd &` (and nohup to SIGHUP): SIGINT is ignored in the child."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_ui(
    dagster_home: Path, root: Path, log: Path, port: int | None = None, env: dict | None = None, timeout: float = 120.0
) -> UiServer:
    """``gpt4scene ui`` started like ``make ui &`` from a script (SIGINT ignored, own process group), waiting for
    ``GET /server_info``."""
    port = port or free_port()
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "GPT4SCENE_ROOT": str(root),
        "GPT4SCENE_RAW_ROOT": str(root / "raw"),
        **(env or {}),
    }
    handle = open(log, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ui", "--root", str(root), "--port", str(port)],
        cwd=PROJECT_DIR,
        env=environment,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_as_background_job,
    )
    server = UiServer(process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gpt4scene ui exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    stop_ui(server, signal.SIGKILL)
    raise TimeoutError(f"webserver not up after {timeout} s:\n{log.read_text()[-4000:]}")


def stop_ui(server: UiServer, signum: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[set[int], float]:
    """Send ``signum`` to the ui process; returns the processes still alive after ``timeout`` s and the seconds it
    took. Anything left is SIGKILLed afterwards so a failing test leaves nothing behind."""
    tree = server.tree()
    started = time.monotonic()
    server.process.send_signal(signum)
    deadline = started + timeout
    while time.monotonic() < deadline:
        server.process.poll()
        if not any(alive(pid) for pid in tree):
            return set(), time.monotonic() - started
        time.sleep(0.2)
    left = {pid for pid in tree if alive(pid)}
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait(timeout=10)
    return left, time.monotonic() - started
