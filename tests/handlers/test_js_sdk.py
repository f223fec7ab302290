"""clients/js (`backchannel-client`) against a real Backchannel: node:test runs its tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from backchannel.handlers.asyncapi import build_asyncapi
from backchannel.handlers.registry import NAMESPACE_CLASSES
from backchannel.server.app import create_app
from backchannel.server.settings import Settings

SDK = Path(__file__).resolve().parents[2] / "clients" / "js"


@pytest.fixture
def node() -> str:
    """node, with clients/js installed and built by `make test`."""
    binary = shutil.which("node")
    if binary is None or not (SDK / "dist" / "esm" / "index.js").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("clients/js is not built: run `make clients/js/dist/.built`")
        pytest.skip("node and a built clients/js are needed (make test builds them)")
    return binary


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Dev top-ups on, so the SDK test can unlock without Stripe."""
    return settings.model_copy(update={"dev_topup": True})


async def test_the_sdk_passes_its_node_tests_against_a_real_server(
    base_url: str, node: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        node,
        "--test",
        "--test-reporter=spec",
        str(SDK / "test" / "client.test.mjs"),
        env={**os.environ, "BACKCHANNEL_URL": base_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()


SHORT_TOKEN_SECONDS = 8


async def test_the_sdk_outlives_short_lived_tokens_refreshing_live_or_else_reconnecting(
    settings: Settings, node: str
) -> None:
    # Below the setting's floor of 30 s on purpose (model_copy does not validate): every
    # token is then "expiring" at once, and the test outlives several of them in seconds.
    short = settings.model_copy(update={"access_token_ttl_seconds": SHORT_TOKEN_SECONDS})
    server = TestServer(create_app(short), host="127.0.0.1")
    await server.start_server()
    try:
        process = await asyncio.create_subprocess_exec(
            node,
            "--test",
            "--test-reporter=spec",
            str(SDK / "test" / "refresh.test.mjs"),
            env={
                **os.environ,
                "BACKCHANNEL_URL": str(server.make_url("")).rstrip("/"),
                "BACKCHANNEL_TOKEN_TTL": str(SHORT_TOKEN_SECONDS),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        await server.close()
    text = output.decode()
    assert process.returncode == 0, text
    assert re.search(r"\bpass 2\b", text) and re.search(r"\bskipped 0\b", text), text


async def test_the_generated_types_match_the_asyncapi_document(node: str, tmp_path: Path) -> None:
    document = tmp_path / "asyncapi.json"
    document.write_text(json.dumps(build_asyncapi(NAMESPACE_CLASSES)))
    process = await asyncio.create_subprocess_exec(
        node,
        str(SDK / "scripts" / "generate-types.mjs"),
        "--check",
        "--input",
        str(document),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output.decode()
    assert sys.executable  # the document above came from this interpreter's server code
