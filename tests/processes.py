"""Real server processes for multi-node and failure tests: start, wait ready, SIGTERM, SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A `python -m backchannel serve` child process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until `/readyz` answers 200."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{self.log()}")
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: the node dies without closing anything."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    async def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for the graceful exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode


def start_server(
    env: Mapping[str, str], log_dir: Path, *, port: int | None = None
) -> ServerProcess:
    """Start a server process with these settings (environment variables)."""
    chosen = port or free_port()
    log_path = log_dir / f"server-{chosen}.log"
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BACKCHANNEL_", "DATABASE_URL", "REDIS_URL"))
    }
    full_env.update(env)
    full_env.update({"BACKCHANNEL_HOST": "127.0.0.1", "BACKCHANNEL_PORT": str(chosen)})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "backchannel", "serve"],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(process, chosen, log_path)


def settings_env(
    *, database_url: str, redis_url: str | None, redis_prefix: str, jwt_secret: str, data_dir: Path
) -> dict[str, str]:
    """The environment for a test node sharing this run's database and Redis prefix."""
    env = {
        "DATABASE_URL": database_url,
        "BACKCHANNEL_REDIS_PREFIX": redis_prefix,
        "BACKCHANNEL_JWT_SECRET": jwt_secret,
        "BACKCHANNEL_DATA_DIR": str(data_dir),
        "BACKCHANNEL_MIGRATE_ON_START": "false",
        "BACKCHANNEL_SHUTDOWN_GRACE_SECONDS": "2",
        "BACKCHANNEL_LOG_LEVEL": "warning",
        # As in the in-process test settings: most stories are not about who may message whom.
        "BACKCHANNEL_FAN_TO_FAN_DMS": "true",
        "BACKCHANNEL_CREATOR_DM_POLICY_DEFAULT": "everyone",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env
