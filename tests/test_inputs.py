"""Raw JSON nested too deep is refused before parsing, so every Python answers it alike."""

from __future__ import annotations

import pytest

from backchannel import inputs
from backchannel.errors import Invalid

LIMIT = inputs.MAX_RAW_DEPTH


@pytest.mark.parametrize(
    ("text", "deeper"),
    [
        ("[" * (LIMIT + 1) + "]" * (LIMIT + 1), True),
        ("[" * LIMIT + "]" * LIMIT, False),
        ('{"a":' * (LIMIT + 1) + "1" + "}" * (LIMIT + 1), True),
        # Many brackets in all, never deep at once; and brackets inside strings do not count.
        ("[" + "[]," * (LIMIT * 4) + "[]]", False),
        ('["' + "[" * (LIMIT * 2) + '"]', False),
        ('["\\"' + "[" * (LIMIT * 2) + '"]', False),
        ('2/chat,7["e",' + "[" * (LIMIT + 5), True),  # a Socket.IO packet, unterminated
    ],
)
def test_nesting_is_measured_outside_strings(text: str, deeper: bool) -> None:
    assert inputs.nests_deeper_than(text) is deeper
    assert inputs.nests_deeper_than(text.encode()) is deeper


def test_a_body_nested_past_the_limit_names_the_body_on_every_python() -> None:
    with pytest.raises(Invalid) as refused:
        inputs.loads("[" * 3000 + "]" * 3000)
    assert refused.value.details == [
        {"field": "(body)", "message": f"nested deeper than {inputs.MAX_DEPTH} levels"}
    ]
