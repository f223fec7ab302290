"""README's "Try it" runs as written: its shell blocks in one bash against a live server, its
JavaScript block in Node, and the output is what the README says it is."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from backchannel.server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
START = "BACKCHANNEL_DEV_TOPUP=1 make run\n"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def try_it_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the "Try it" section, in order."""
    text = README.read_text()
    section = text[text.index("\n## Try it\n") :]
    section = section[: section.index("\n## ", 1)]
    return [(match.group(1), match.group(2)) for match in _FENCE.finditer(section)]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """What the README's `BACKCHANNEL_DEV_TOPUP=1 make run` serves: dev defaults, top-ups on."""
    return settings.model_copy(
        update={
            "dev_topup": True,
            "fan_to_fan_dms": False,
            "creator_dm_policy_default": "subscribers",
        }
    )


@pytest.fixture
def tools() -> None:
    """curl, jq, make, node and npm, which the section uses."""
    missing = [
        name for name in ("bash", "curl", "jq", "make", "node", "npm") if not shutil.which(name)
    ]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the README's commands need {', '.join(missing)}")
        pytest.skip(f"the README's commands need {', '.join(missing)}")


async def _run(command: list[str], stdin: str, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={key: value for key, value in os.environ.items() if not key.startswith("MAKE")},
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=100)
    text = output.decode()
    assert process.returncode == 0, text
    return text


def test_the_section_starts_the_server_and_says_what_it_prints() -> None:
    blocks = try_it_blocks()
    assert blocks[0] == ("sh", START)
    assert [language for language, _ in blocks] == ["sh", "sh", "sh", "text", "js"]


async def test_every_command_of_try_it_runs_against_a_live_server(
    base_url: str, tools: None
) -> None:
    blocks = try_it_blocks()
    here = base_url.removeprefix("http://")
    shell = "".join(text for language, text in blocks[1:] if language == "sh")
    output = await _run(
        ["bash", "-euo", "pipefail", "-s"], shell.replace("localhost:8080", here), ROOT
    )
    expected = next(text for language, text in blocks if language == "text").splitlines()
    assert output.splitlines()[-len(expected) :] == expected, output

    script = next(text for language, text in blocks if language == "js")
    refused = await _run(
        ["node", "--input-type=module"], script.replace("localhost:8080", here), ROOT / "clients/js"
    )
    assert refused.strip() == "unauthorized", refused
