"""Content filters: blocked words and phrases, and link rules, each with an action.

Pure rules, no I/O. Matching is case- and accent-insensitive and on whole words, and sees
through a few obfuscations: repeated letters (`baaad`), separators between letters (`b.a-d`,
`b a d`) and common digit/symbol swaps (`b4d`, `$pam`). The text is normalised one character
for one character, so a match's span in the normalised text is its span in the original, and
`mask` replaces exactly what matched.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Action = Literal["reject", "mask", "flag"]
MASK = "***"
_STRENGTH: dict[str, int] = {"flag": 1, "mask": 2, "reject": 3}
_SWAPS = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_SEPARATORS = r"[\W_]{0,3}"


class WordRule(BaseModel):
    """A blocked word or phrase and what a match does."""

    model_config = ConfigDict(extra="forbid")
    text: Annotated[
        str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=100)
    ]
    action: Action = "reject"


class LinkRule(BaseModel):
    """What links may appear: `allow` (any), `block` (none) or `domains` (only those listed,
    and their subdomains); a link that breaks the rule triggers `action`."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["allow", "block", "domains"] = "allow"
    domains: Annotated[
        list[Annotated[str, StringConstraints(to_lower=True, max_length=253)]],
        Field(max_length=1000),
    ] = []
    action: Action = "reject"


class FilterRules(BaseModel):
    """`GET/PUT /admin/filters`: the whole list, replaced whole."""

    model_config = ConfigDict(extra="forbid")
    words: Annotated[list[WordRule], Field(max_length=5000)] = []
    links: LinkRule = LinkRule()


@dataclass(frozen=True)
class Outcome:
    """What the filters make of one text: the text to store, and the strongest action hit."""

    text: str
    action: Action | None
    matched: tuple[str, ...] = ()


def normalise(text: str) -> str:
    """One character per character: casefolded, accents dropped, digit/symbol swaps undone."""
    out = []
    for ch in text:
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        folded = base.casefold()[:1] or ch
        out.append(folded.translate(_SWAPS))
    return "".join(out)


@lru_cache(maxsize=4096)
def _word_pattern(text: str) -> re.Pattern[str]:
    letters = [c for c in normalise(text) if not c.isspace()]
    body = _SEPARATORS.join(f"(?:{re.escape(c)})+" for c in letters)
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])")


_LINK = re.compile(
    r"(?:(?:https?|ftp)://|www\.)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})(?=[/:?#\s]|$|[^\w.-])",
    re.IGNORECASE,
)


def _domain_allowed(domain: str, allowed: list[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in allowed)


def apply(rules: FilterRules, text: str) -> Outcome:
    """Run every rule over `text`."""
    if not text:
        return Outcome(text, None)
    norm = normalise(text)
    spans: list[tuple[int, int]] = []
    strongest: Action | None = None
    matched: list[str] = []

    def hit(action: Action, start: int, end: int, what: str) -> None:
        nonlocal strongest
        matched.append(what)
        if action == "mask":
            spans.append((start, end))
        if strongest is None or _STRENGTH[action] > _STRENGTH[strongest]:
            strongest = action

    for rule in rules.words:
        for m in _word_pattern(rule.text).finditer(norm):
            hit(rule.action, m.start(), m.end(), rule.text)
    if rules.links.mode != "allow":
        # Links as written (a digit in a domain is a digit), one character per character.
        lowered = "".join(c.lower()[:1] or c for c in text)
        for m in _LINK.finditer(lowered):
            domain = m.group(1).lower()
            if rules.links.mode == "block" or not _domain_allowed(domain, rules.links.domains):
                hit(rules.links.action, m.start(), m.end(), f"link:{domain}")
    if spans:
        text = _mask(text, spans)
    return Outcome(text, strongest, tuple(dict.fromkeys(matched)))


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    out, last = [], 0
    for start, end in merged:
        out.append(text[last:start])
        out.append(MASK)
        last = end
    out.append(text[last:])
    return "".join(out)
