"""Signed media links: bound to one id, variant, viewer and expiry (pure)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from backchannel.media.links import MediaLinks


def _parts(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_link_checks_out_for_exactly_what_it_was_signed_for_until_it_expires() -> None:
    now = [1_000_000.0]
    links = MediaLinks.from_secret("k" * 40, ttl_seconds=600)
    links = MediaLinks(links.secret, 600, clock=lambda: now[0])
    q = _parts(links.link("5", "full", "fan-1").url)
    assert links.check("5", "full", "fan-1", q["exp"], q["sig"]) == 600
    assert links.check("5", "full", "fan-2", q["exp"], q["sig"]) == 0
    assert links.check("6", "full", "fan-1", q["exp"], q["sig"]) == 0
    assert links.check("5", "preview", "fan-1", q["exp"], q["sig"]) == 0
    assert links.check("5", "full", "fan-1", str(int(q["exp"]) + 1), q["sig"]) == 0
    assert links.check("5", "full", "fan-1", "nan", q["sig"]) == 0
    now[0] += 601
    assert links.check("5", "full", "fan-1", q["exp"], q["sig"]) == 0


def test_links_from_another_secret_never_check_out() -> None:
    ours = MediaLinks.from_secret("a" * 40, 600)
    theirs = MediaLinks.from_secret("b" * 40, 600)
    q = _parts(theirs.link("5", "full", "fan").url)
    assert ours.check("5", "full", "fan", q["exp"], q["sig"]) == 0
