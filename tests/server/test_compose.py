"""`docs/deploy/compose.yaml`: checked as a file everywhere, brought up where an engine runs.

The smoke test needs docker (with the compose plugin) or podman (`podman compose` or
`podman-compose`) and a running engine; without one it is skipped saying which part is missing
(this project's CI machine has none). The manual steps are in the README ("Compose").
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
import yaml

from backchannel.server.settings import Settings
from tests.nodes import eventually
from tests.processes import free_port
from tests.support import Api

DEPLOY = Path(__file__).resolve().parents[2] / "docs/deploy"
COMPOSE = DEPLOY / "compose.yaml"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _upstream(conf: str, name: str) -> str:
    match = re.search(r"upstream " + name + r" \{(.*?)\}", conf, re.S)
    assert match, name
    return match.group(1)


def test_the_compose_file_runs_postgres_redis_two_production_nodes_and_nginx() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "node1", "node2", "nginx"}
    known = {f"BACKCHANNEL_{name.upper()}" for name in Settings.model_fields}
    known |= {"DATABASE_URL", "REDIS_URL"}
    for name in ("node1", "node2"):
        node = services[name]
        assert node["build"]["context"] == "../.." and (DEPLOY / "../../Dockerfile").exists()
        environment = node["environment"]
        assert set(environment) <= known, set(environment) - known
        assert environment["DATABASE_URL"].endswith("@postgres:5432/backchannel")
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        # No default secret: compose refuses to start without one (and production would too).
        assert environment["BACKCHANNEL_JWT_SECRET"].startswith("${BACKCHANNEL_JWT_SECRET:?")
        assert "BACKCHANNEL_ENV" not in environment  # the image's default, production
        assert node["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert node["depends_on"]["redis"]["condition"] == "service_healthy"
    nginx = services["nginx"]
    nginx_ip = nginx["networks"]["backchannel"]["ipv4_address"]
    assert services["node1"]["environment"]["BACKCHANNEL_TRUSTED_PROXIES"] == nginx_ip
    (mount,) = nginx["volumes"]
    source = mount.split(":")[0]
    conf = (DEPLOY / source).read_text()
    sockets = _upstream(conf, "backchannel_sockets")
    api = _upstream(conf, "backchannel_api")
    assert "ip_hash;" in sockets and "ip_hash" not in api
    for upstream in (sockets, api):
        assert "server node1:8080" in upstream and "server node2:8080" in upstream
    socket_location = re.search(r"location /socket.io/ \{(.*?)\}", conf, re.S)
    assert socket_location and "proxy_pass http://backchannel_sockets;" in socket_location.group(1)
    assert "proxy_set_header Upgrade $http_upgrade;" in socket_location.group(1)


def _engine() -> tuple[list[str], str]:
    """The compose command, or why there is none."""
    candidates: list[tuple[list[str], list[str]]] = []
    if shutil.which("docker"):
        candidates.append((["docker", "compose"], ["docker", "info"]))
    if shutil.which("podman"):
        candidates.append((["podman", "compose"], ["podman", "info"]))
    if shutil.which("podman-compose"):
        candidates.append((["podman-compose"], ["podman", "info"]))
    if not candidates:
        return [], "no container engine (docker or podman) is installed"
    reasons = []
    for compose, info in candidates:
        version = subprocess.run([*compose, "version"], capture_output=True, timeout=30)
        if version.returncode != 0:
            reasons.append(f"`{' '.join(compose)}` is not available")
            continue
        if subprocess.run(info, capture_output=True, timeout=30).returncode != 0:
            reasons.append(f"`{' '.join(info)}` fails: no running engine")
            continue
        return compose, ""
    return [], "; ".join(reasons)


@pytest.fixture(scope="module")
def compose_up() -> Iterator[str]:
    """The compose project up on a free port; its base URL (nginx). Torn down with its data."""
    command, reason = _engine()
    if not command:
        pytest.skip(f"compose smoke test skipped: {reason}")
    port = free_port()
    project = f"bc-smoke-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BACKCHANNEL_JWT_SECRET": secrets.token_urlsafe(48),
        "BACKCHANNEL_COMPOSE_PORT": str(port),
        "BACKCHANNEL_CREATOR_SIGNUP": "open",
    }
    base = [*command, "-f", str(COMPOSE), "-p", project]
    try:
        subprocess.run([*base, "up", "-d", "--build", "--wait"], env=env, check=True, timeout=1500)
        yield f"http://127.0.0.1:{port}"
    finally:
        logs = subprocess.run([*base, "logs", "--no-color"], env=env, capture_output=True)
        print(logs.stdout.decode(errors="replace")[-20000:])
        subprocess.run([*base, "down", "-v", "--remove-orphans"], env=env, timeout=300)


@pytest.fixture
async def compose_api(compose_up: str) -> AsyncIterator[Api]:
    """An HTTP client of the cluster, through nginx."""
    async with aiohttp.ClientSession() as session:
        yield Api(compose_up, session)


async def _polling_socket(base_url: str, token: str, inbox: list[Any]) -> socketio.AsyncClient:
    """A /chat socket on long-polling only: every request must reach the same node."""
    client = socketio.AsyncClient(reconnection=False)
    client.on("message:new", lambda data: inbox.append(data), namespace="/chat")
    await client.connect(
        base_url, namespaces=["/chat"], auth={"token": token}, transports=["polling"]
    )
    return client


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_the_compose_cluster_serves_a_conversation_through_nginx(
    compose_up: str, compose_api: Api
) -> None:
    api = compose_api
    status, ready = await api.call("GET", "/readyz")
    assert status == 200 and ready["cluster"] == "ok", ready
    creator, fan = await api.register(role="creator"), await api.register()
    inbox: list[Any] = []
    creator_socket = await _polling_socket(compose_up, creator.access_token, [])
    fan_socket = await _polling_socket(compose_up, fan.access_token, inbox)
    try:
        opened = await creator_socket.call(
            "conversation:open", {"participant_ids": [fan.id]}, namespace="/chat"
        )
        assert opened["ok"], opened
        ack = await creator_socket.call(
            "message:send",
            {"conversation_id": opened["data"]["id"], "client_id": "smoke-1", "body": "hello"},
            namespace="/chat",
        )
        assert ack["ok"], ack
        await eventually(lambda: inbox, timeout=10, what="the fan's message:new")
        assert inbox[0]["body"] == "hello" and inbox[0]["seq"] == 1
    finally:
        await creator_socket.disconnect()
        await fan_socket.disconnect()
    async with api.session.get(f"{compose_up}/api/docs") as response:
        assert response.status == 200
