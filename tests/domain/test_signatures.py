"""The outbound signature: what a receiver computes from the documented rule must match."""

from __future__ import annotations

import hashlib
import hmac

from backchannel.domain.signatures import signature_header, verify_signature


def test_a_receiver_following_the_documented_rule_gets_the_same_signature() -> None:
    body = b'{"id":"evt_1","type":"message.created"}'
    header = signature_header("whsec_test", body, timestamp=1_700_000_000)
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    expected = hmac.new(b"whsec_test", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert t == "1700000000"
    assert v1 == expected


def test_a_signature_verifies_only_for_its_own_body_secret_and_time() -> None:
    body = b'{"a":1}'
    header = signature_header("s3cret", body, timestamp=1000)
    assert verify_signature("s3cret", body, header, now=1100)
    assert not verify_signature("other", body, header, now=1100)
    assert not verify_signature("s3cret", b'{"a":2}', header, now=1100)
    assert not verify_signature("s3cret", body, header, now=1000 + 301)
    assert not verify_signature("s3cret", body, "t=abc,v1=00", now=1000)
    assert not verify_signature("s3cret", body, "", now=1000)


def test_a_receiver_accepts_any_of_several_signatures_during_secret_rotation() -> None:
    body = b"{}"
    old = signature_header("old", body, timestamp=50).split(",")[1]
    new = signature_header("new", body, timestamp=50)
    assert verify_signature("old", body, f"{new},{old}", now=50)
