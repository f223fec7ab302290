"""The push layer's pure rules: Retry-After, collapse keys, and that it only depends downwards."""

from __future__ import annotations

import ast
import email.utils
import pkgutil
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import backchannel.push
from backchannel.push.answers import MAX_RETRY_AFTER, answer, retry_after, topic
from backchannel.push.apns import collapse_id
from backchannel.push.messages import Outcome
from backchannel.push.webpush import WebPushProvider

FORBIDDEN = ("backchannel.domain", "backchannel.server", "backchannel.handlers", "backchannel.http")


def test_retry_after_reads_seconds_or_an_http_date() -> None:
    now = 1_700_000_000.0
    assert retry_after("120", now=now) == 120.0
    assert retry_after(" 7 ", now=now) == 7.0
    assert retry_after(email.utils.formatdate(now + 90, usegmt=True), now=now) == 90.0
    assert retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0
    assert retry_after("10000000", now=now) == MAX_RETRY_AFTER
    assert retry_after(None) is None
    assert retry_after("") is None
    assert retry_after("soon") is None
    assert retry_after("-5") is None


def test_answers_follow_the_outcome_rules() -> None:
    assert answer(201, {}, "").outcome is Outcome.DELIVERED
    assert answer(201, {}, "").detail == "201"
    assert answer(410, {}, "x", gone=True).outcome is Outcome.GONE
    assert answer(429, {"Retry-After": "3"}, "x").retry_after == 3.0
    assert answer(502, {}, "x").outcome is Outcome.RETRY
    assert answer(401, {"Retry-After": "3"}, "x").retry_after is None
    assert answer(401, {}, "x").outcome is Outcome.FAILED
    assert len(answer(400, {}, "e" * 1000).detail) == 200


def test_collapse_keys_fit_each_provider() -> None:
    short, long_key = "conversation:3", "conversation:" + "x" * 200
    assert len(topic(short)) == len(topic(long_key)) == 32
    assert topic(short) != topic("conversation:4")
    assert topic(short).replace("-", "").replace("_", "").isalnum()
    assert collapse_id(short) == short
    assert len(collapse_id(long_key).encode()) == 64 and collapse_id(long_key) != long_key
    assert collapse_id("é" * 32) == "é" * 32  # 64 bytes exactly
    assert len(collapse_id("é" * 33)) == 64


def test_the_push_layer_imports_nothing_above_it() -> None:
    folder = Path(backchannel.push.__file__).parent
    upward = []
    for module in pkgutil.iter_modules([str(folder)]):
        tree = ast.parse((folder / f"{module.name}.py").read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            upward += [f"{module.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert upward == []


async def test_a_vapid_subject_that_is_no_contact_stops_start_up() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    async with aiohttp.ClientSession() as http:
        assert WebPushProvider(pem, "mailto:ops@example.com", http)
        with pytest.raises(ValueError, match="BACKCHANNEL_VAPID_SUBJECT"):
            WebPushProvider(pem, "ops team", http)
