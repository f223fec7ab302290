"""A real 3-primary Redis Cluster on free local ports, from the `redis-server` binary."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from tests.outages import _redis_server_binary
from tests.processes import free_port
from tests.services import _unavailable


def _free_cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class LocalRedisCluster:
    """Three primaries, no replicas, no persistence; `url` is `redis+cluster://`."""

    def __init__(self, folder: Path, size: int = 3) -> None:
        self.folder = folder
        self.ports = [_free_cluster_port() for _ in range(size)]
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[BinaryIO] = []

    @property
    def url(self) -> str:
        """How Backchannel is told to use this cluster."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        """Start the nodes, join them into one cluster, wait until every slot is served."""
        cli = shutil.which("redis-cli")
        if cli is None:
            _unavailable("redis-cli (to create a Redis Cluster)")
        assert cli is not None
        for port in self.ports:
            log = (self.folder / f"cluster-{port}.log").open("ab")
            self._logs.append(log)
            self._processes.append(
                subprocess.Popen(
                    [
                        _redis_server_binary(),
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(self.folder / f"nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(self.folder),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for port in self.ports:
            _wait_answering(port)
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in self.ports:
            _wait_cluster_ok(port)

    async def flush(self) -> None:
        """Empty every primary (between tests)."""
        for port in self.ports:
            client = Redis(host="127.0.0.1", port=port)
            try:
                await client.flushall()
            finally:
                await client.aclose()

    def stop(self) -> None:
        """Kill every node."""
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()


def _wait_answering(port: int) -> None:
    client = SyncRedis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                if client.ping():
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        client.close()


def _wait_cluster_ok(port: int) -> None:
    client = SyncRedis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 30
    try:
        while not _state_ok(client.execute_command("CLUSTER", "INFO")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {port} never reported cluster_state:ok")
            time.sleep(0.1)
    finally:
        client.close()


def _state_ok(info: object) -> bool:
    if isinstance(info, dict):
        return str(info.get("cluster_state")) in {"ok", "b'ok'"}
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


@contextmanager
def running_cluster(folder: Path) -> Iterator[LocalRedisCluster]:
    """A started cluster, killed afterwards."""
    cluster = LocalRedisCluster(folder)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
