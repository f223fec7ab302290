"""Access tokens: ours (HS256) and another identity provider's (ES256 by PEM key)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from backchannel.domain.tokens import TokenService
from backchannel.errors import TokenExpired, Unauthorized
from backchannel.server.settings import Settings

SECRET = "unit-test-secret-" + "k" * 40


def _service(tmp_path: Path, **overrides: object) -> TokenService:
    return TokenService(Settings(data_dir=tmp_path, jwt_secret=SecretStr(SECRET), **overrides))


async def test_our_tokens_round_trip(tmp_path: Path) -> None:
    tokens = _service(tmp_path, jwt_issuer="https://bc.example", jwt_audience="bc")
    claims = await tokens.verify(tokens.mint_access("user-1"))
    assert claims.user_id == "user-1" and not claims.external
    assert claims.expires_at - time.time() == pytest.approx(900, abs=5)


async def test_a_refresh_shaped_or_audience_less_token_is_refused(tmp_path: Path) -> None:
    tokens = _service(tmp_path, jwt_audience="bc")
    now = int(time.time())
    not_access = jwt.encode(
        {"sub": "u", "iat": now, "exp": now + 60, "type": "refresh", "aud": "bc"}, SECRET
    )
    no_audience = jwt.encode({"sub": "u", "iat": now, "exp": now + 60, "type": "access"}, SECRET)
    for token in (not_access, no_audience):
        with pytest.raises(Unauthorized):
            await tokens.verify(token)


async def test_an_es256_token_verifies_against_a_configured_pem_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "idp.pem").write_bytes(pem)
    tokens = _service(tmp_path, jwt_public_key=str(tmp_path / "idp.pem"))
    now = int(time.time())
    good = jwt.encode({"sub": "idp-42", "iat": now, "exp": now + 60, "name": "Q"}, key, "ES256")
    claims = await tokens.verify(good)
    assert (claims.user_id, claims.external, claims.name) == ("idp-42", True, "Q")

    expired = jwt.encode({"sub": "idp-42", "iat": now - 99, "exp": now - 9}, key, "ES256")
    with pytest.raises(TokenExpired):
        await tokens.verify(expired)


async def test_external_tokens_are_refused_when_no_key_is_configured(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    token = jwt.encode({"sub": "idp-1", "iat": now, "exp": now + 60}, key, "ES256")
    with pytest.raises(Unauthorized, match="not configured"):
        await _service(tmp_path).verify(token)


async def test_a_remembered_token_still_expires_and_a_tampered_copy_is_refused(
    tmp_path: Path,
) -> None:
    tokens = _service(tmp_path)
    now = int(time.time())
    short = jwt.encode({"sub": "u", "iat": now, "exp": now + 1, "type": "access"}, SECRET)
    assert (await tokens.verify(short)).user_id == "u"
    assert (await tokens.verify(short)).user_id == "u"  # remembered
    head, body, signature = short.split(".")
    tampered = f"{head}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(Unauthorized):
        await tokens.verify(tampered)
    await asyncio.sleep(1.1)
    with pytest.raises(TokenExpired):
        await tokens.verify(short)
