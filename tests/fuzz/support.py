"""A live node for the fuzzers, and what every fuzz run must not see happen on it.

The node is a real `backchannel serve` process (so a blocked event loop shows, and its log is
its own), with Stripe pointed at a fake served from another thread, dev top-ups on and the
HTTP rate limits out of the way. A separate watcher process polls `/healthz` throughout: the
fuzzers are busy Python in this process, and a watcher here would measure our own GIL.

How much each fuzzer does is set by `FUZZ_EXAMPLES` (hypothesis examples per operation or
event; `make fuzz` sets it high, `make test` runs the default slice), and how fast `/healthz`
must stay by `FUZZ_HEALTHZ_MS`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from tests.processes import ServerProcess, free_port, settings_env, start_server
from tests.stripe_support import WEBHOOK_SECRET, FakeStripe

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
# `make fuzz` holds /healthz to 100 ms. The slice inside `make test` allows 500 ms: enough to
# catch a stalled loop (the review's frame flood stalled it for 6 s), not so tight that a
# shared, loaded machine's scheduling fails the suite.
HEALTHZ_LIMIT_MS = float(os.environ.get("FUZZ_HEALTHZ_MS", "500"))
ACK_TIMEOUT = 5.0

_WATCHER = """
import json, os, sys, time, urllib.request
url, out = sys.argv[1], sys.argv[2]
parent = os.getppid()
slow = []
while os.getppid() == parent:  # ends with the test run, however that ends
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            status = response.status
    except Exception as exc:
        status = repr(exc)
    took = (time.perf_counter() - started) * 1000
    if status != 200 or took > float(sys.argv[3]):
        slow.append([round(took, 1), status])
        with open(out, "w") as f:
            json.dump(slow, f)
    time.sleep(0.05)
"""


@dataclass
class Counter:
    """How many fuzz cases ran, by fuzzer (printed at the end of the run)."""

    cases: dict[str, int] = field(default_factory=dict)

    def add(self, fuzzer: str, n: int = 1) -> None:
        self.cases[fuzzer] = self.cases.get(fuzzer, 0) + n


COUNTER = Counter()


class _FakeStripeThread:
    """The fake Stripe API on its own loop in a thread (the fuzzers block this one)."""

    def __init__(self) -> None:
        self.fake = FakeStripe()
        self._loop = asyncio.new_event_loop()
        self._server: TestServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return str(self._server.make_url("")).rstrip("/")

    async def _serve(self) -> TestServer:
        server = TestServer(self.fake.app(), host="127.0.0.1")
        await server.start_server()
        return server

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class FuzzNode:
    """The running node, its identities, and its health record."""

    process: ServerProcess
    fan: dict[str, Any]
    creator: dict[str, Any]
    api_key: str
    healthz_record: Path

    @property
    def url(self) -> str:
        return self.process.url

    def headers(self, who: str) -> dict[str, str]:
        """`Authorization` for `fan`, `creator` or `apikey`."""
        token = {
            "fan": self.fan["access_token"],
            "creator": self.creator["access_token"],
            "apikey": self.api_key,
        }[who]
        return {"Authorization": f"Bearer {token}"}

    def slow_healthz(self) -> list[Any]:
        """Every `/healthz` answer slower than the limit (or not 200) so far."""
        if not self.healthz_record.exists():
            return []
        return list(json.loads(self.healthz_record.read_text() or "[]"))

    def tracebacks(self) -> list[str]:
        """Log lines of the node that carry a traceback or an `internal` answer."""
        return [
            line[:2000]
            for line in self.process.log().splitlines()
            if "Traceback" in line or '"status": 500' in line or "internal error (ref" in line
        ]

    def assert_healthy(self) -> None:
        """No traceback in the log and `/healthz` always fast: the run's standing checks."""
        assert self.process.process.poll() is None, "the node died:\n" + self.process.log()[-5000:]
        assert not self.tracebacks(), "\n".join(self.tracebacks()[:5])
        assert not self.slow_healthz(), (
            f"/healthz over {HEALTHZ_LIMIT_MS} ms: {self.slow_healthz()}"
        )


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def _wait_ready(process: ServerProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{process.log()}")
        try:
            with urllib.request.urlopen(f"{process.url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server not ready:\n{process.log()}")


def _api_key(env: dict[str, str]) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BACKCHANNEL_")}
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "backchannel", "apikey", "create", f"fuzz{free_port()}"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = re.search(r"bck_[A-Za-z0-9_-]+", done.stdout)
    assert found, done.stdout + done.stderr
    return found.group(0)


def running_node(
    *, database_url: str, redis_prefix: str, jwt_secret: str, data_dir: Path
) -> Iterator[FuzzNode]:
    """Start the node and its watcher; stop both (and check the log) afterwards."""
    stripe = _FakeStripeThread()
    stripe_url = stripe.start()
    env = settings_env(
        database_url=database_url,
        redis_url=None,
        redis_prefix=redis_prefix,
        jwt_secret=jwt_secret,
        data_dir=data_dir,
    )
    env.update(
        {
            "BACKCHANNEL_DEV_TOPUP": "true",
            "BACKCHANNEL_STRIPE_SECRET_KEY": "sk_test_fake",
            "BACKCHANNEL_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "BACKCHANNEL_STRIPE_API_BASE": stripe_url,
            "BACKCHANNEL_HTTP_IP_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_HTTP_USER_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_LOGIN_FAILURES_PER_IP": "1000000/1s",
            "BACKCHANNEL_LOGIN_FAILURES_PER_ACCOUNT": "1000000/1s",
            "BACKCHANNEL_CONNECT_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_SOCKET_EVENT_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_MESSAGE_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_CHECKOUT_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_BROADCAST_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_PRESENCE_SET_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_MAX_UNAUTHENTICATED_PER_IP": "1000",
        }
    )
    process = start_server(env, data_dir)
    watcher: subprocess.Popen[bytes] | None = None
    try:
        _wait_ready(process)
        record = data_dir / "slow-healthz.json"
        watcher = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHER,
                f"{process.url}/healthz",
                str(record),
                str(HEALTHZ_LIMIT_MS),
            ]
        )
        api = f"{process.url}/api/v1"
        users = []
        for role in ("fan", "creator"):
            users.append(
                _post(
                    f"{api}/auth/register",
                    {
                        "email": f"fuzz-{role}-{free_port()}@example.com",
                        "password": "correct horse battery",
                        "display_name": f"Fuzz {role}",
                        "role": role,
                    },
                )
            )
        yield FuzzNode(process, users[0], users[1], _api_key(env), record)
    finally:
        if watcher is not None:
            watcher.terminate()
            watcher.wait(10)
        process.kill()
        stripe.stop()
