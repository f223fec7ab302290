"""Access tokens: ours (HS256) and another identity provider's (ES256 by PEM key)."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from backchannel.domain.hs256 import OwnTokenCheck
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


def _pyjwt_accepts(token: str) -> bool:
    try:
        jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "sub", "iat"]})
    except jwt.PyJWTError:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _odd_tokens() -> dict[str, str]:
    """Tokens of every shape the fast HS256 check must judge as PyJWT does (or pass on)."""
    now = int(time.time())
    base = {"sub": "u1", "iat": now, "exp": now + 60, "type": "access"}

    def sign(claims: dict[str, object], **headers: object) -> str:
        return jwt.encode(claims, SECRET, algorithm="HS256", headers=headers or None)

    good = sign(base)
    head, body, sig = good.split(".")
    admin, none, array = _b64(b'{"sub":"admin"}'), _b64(b'{"alg":"none"}'), _b64(b"[1]")
    return {
        "good": good,
        "good, float times": sign({**base, "iat": now - 0.5, "exp": now + 60.5}),
        "expired": sign({**base, "iat": now - 99, "exp": now - 1}),
        "expires this second": sign({**base, "exp": now}),
        "issued in the future": sign({**base, "iat": now + 30}),
        "not yet valid": sign({**base, "nbf": now + 30}),
        "no exp": sign({k: v for k, v in base.items() if k != "exp"}),
        "no iat": sign({k: v for k, v in base.items() if k != "iat"}),
        "string exp": sign({**base, "exp": str(now + 60)}),
        "boolean iat": sign({**base, "iat": True}),
        "infinite exp": sign({**base, "exp": float("inf")}),
        "NaN iat": sign({**base, "iat": float("nan")}),
        "huge exp": sign({**base, "exp": 10**30}),
        "empty sub": sign({**base, "sub": ""}),
        "numeric sub": sign({**base, "sub": 7}),
        "numeric jti": sign({**base, "jti": 7}),
        "other secret": jwt.encode(base, SECRET + "x", algorithm="HS256"),
        "tampered payload": f"{head}.{admin}.{sig}",
        "padded signature": f"{head}.{body}.{sig}==",
        "junk in signature": f"{head}.{body}.{sig[:-2]}!{sig[-1]}",
        "extra header field": sign(base, kid="k1"),
        "alg none": f"{none}.{body}.",
        "two parts": f"{head}.{body}",
        "not a JSON object": f"{head}.{array}.{sig}",
        "refresh type": sign({**base, "type": "refresh"}),
        "non-ascii": good + "é",
    }


@pytest.mark.parametrize("name", sorted(_odd_tokens()))
def test_the_fast_hs256_check_never_accepts_what_pyjwt_refuses(name: str) -> None:
    token = _odd_tokens()[name]
    fast = OwnTokenCheck(SECRET).accept(token, require_type=True)
    if fast is not None:
        assert _pyjwt_accepts(token), name
        assert fast == jwt.decode(token, SECRET, algorithms=["HS256"])
    if name in ("good", "good, float times"):
        assert fast is not None and fast["sub"] == "u1"


async def test_a_token_the_fast_check_passes_on_gets_pyjwts_verdict(tmp_path: Path) -> None:
    tokens = _service(tmp_path)
    now = int(time.time())
    expired = jwt.encode({"sub": "u", "iat": now - 99, "exp": now - 1, "type": "access"}, SECRET)
    with pytest.raises(TokenExpired):
        await tokens.verify(expired)
    with pytest.raises(Unauthorized):
        await tokens.verify(jwt.encode({"sub": "u", "iat": now, "exp": now + 60}, SECRET))
    with_kid = jwt.encode(
        {"sub": "u", "iat": now, "exp": now + 60, "type": "access"}, SECRET, headers={"kid": "a"}
    )
    assert (await tokens.verify(with_kid)).user_id == "u"
