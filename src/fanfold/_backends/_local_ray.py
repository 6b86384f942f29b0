"""A real local Ray cluster for tests and benchmarks: ``ray start --block`` nodes owned by this
process, on loopback, stopped when it closes.

Each node is its own ``ray start ... --block`` process, so closing stops exactly these nodes
(``ray stop --force`` would kill every Ray process on the machine, other users' clusters too).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from fanfold._errors import UsageError


class LocalRayCluster:
    """A head node (and any more nodes) started on loopback; use as a context manager::

    with LocalRayCluster() as cluster:      # a head node with 1 CPU
        cluster.add_node()                  # a second node with 1 CPU
        ff.run_sync(ff.map(work), items, backend=ff.Ray(address=cluster.address))
    """

    def __init__(self, *, num_cpus: int = 1) -> None:
        self.num_cpus = num_cpus
        self.address = ""
        self._nodes: list[subprocess.Popen[str]] = []
        self._temp = ""
        self._env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}

    def __enter__(self) -> LocalRayCluster:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> str:
        """Start the head node; return its address (``127.0.0.1:PORT``)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self._temp = tempfile.mkdtemp(prefix="ffray")  # short: Ray's socket paths live under it
        self.address = f"127.0.0.1:{port}"
        head = ["--head", f"--port={port}", f"--num-cpus={self.num_cpus}", "--include-dashboard=false"]
        self._start([*head, f"--temp-dir={self._temp}"])
        return self.address

    def add_node(self, num_cpus: int | None = None) -> None:
        """Start one more node joining the head."""
        if not self.address:
            raise UsageError("LocalRayCluster.add_node(): start the head first (use the cluster in a with block)")
        self._start([f"--address={self.address}", f"--num-cpus={num_cpus or self.num_cpus}"])

    def close(self) -> None:
        """Stop the nodes, newest first, and remove the cluster's temporary folder."""
        while self._nodes:
            node = self._nodes.pop()
            node.terminate()  # `ray start --block` stops its node's processes on SIGTERM
            node.wait(timeout=60)
            if node.stdout is not None:
                node.stdout.close()
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)

    def _start(self, args: list[str]) -> None:
        ray = str(Path(sys.executable).parent / "ray")
        if not Path(ray).exists():
            raise UsageError("the `ray` command is not installed: pip install 'fanfold[ray]'")
        node = subprocess.Popen(
            [ray, "start", *args, "--disable-usage-stats", "--block"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self._env,
        )
        assert node.stdout is not None
        seen = []
        for line in node.stdout:  # blocks until ray says the node runs (or exits)
            seen.append(line)
            if "Ray runtime started" in line:
                break
        else:
            raise RuntimeError(f"ray start {' '.join(args)} exited {node.wait()}:\n{''.join(seen)}")
        self._nodes.append(node)
        threading.Thread(target=_drain, args=(node.stdout,), daemon=True).start()  # keep its pipe from filling


def _drain(stream: IO[str] | Any) -> None:
    with contextlib.suppress(ValueError, OSError):  # closed when the cluster closes
        for _ in stream:
            pass
