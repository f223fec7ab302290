"""The content filters as pure rules: obfuscated words, whole words only, links, masking."""

from __future__ import annotations

import pytest

from backchannel.domain.filters import FilterRules, LinkRule, WordRule, apply

RULES = FilterRules(
    words=[
        WordRule(text="scam", action="mask"),
        WordRule(text="kill you", action="reject"),
        WordRule(text="crypto", action="flag"),
    ],
    links=LinkRule(mode="domains", domains=["example.com"], action="reject"),
)


@pytest.mark.parametrize(
    "text",
    ["SCAM", "Scäm", "sc4m", "s.c.a.m", "s c a m", "scaaaam", "s_c-a.m", "\u017fcam"],
)
def test_obfuscated_words_are_masked(text: str) -> None:
    outcome = apply(RULES, f"this is a {text} really")
    assert outcome.action == "mask"
    assert outcome.text == "this is a *** really"


@pytest.mark.parametrize("text", ["scammer", "ascam", "escalate", "scan", "sca mper"])
def test_only_whole_words_match(text: str) -> None:
    assert apply(RULES, text).action is None


def test_the_strongest_action_wins_and_phrases_span_separators() -> None:
    outcome = apply(RULES, "crypto scam, I will k1ll   y0u")
    assert outcome.action == "reject"
    assert set(outcome.matched) == {"crypto", "scam", "kill you"}
    assert apply(RULES, "buy crypto").action == "flag"


def test_links_outside_the_allowed_domains_are_caught() -> None:
    assert apply(RULES, "see https://example.com/a and www.shop.example.com").action is None
    outcome = apply(RULES, "or https://evil.io/x?y=1")
    assert outcome.action == "reject" and outcome.matched == ("link:evil.io",)
    blocked = FilterRules(links=LinkRule(mode="block", action="mask"))
    assert apply(blocked, "visit example.com now").text == "visit *** now"
    assert apply(FilterRules(), "visit example.com").action is None
