"""The README stays true: it lists every setting and the two commands."""

from __future__ import annotations

from pathlib import Path

from backchannel.server.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _env_name(field: str) -> str:
    return (
        field.upper() if field in {"database_url", "redis_url"} else f"BACKCHANNEL_{field.upper()}"
    )


def test_the_readme_lists_every_setting() -> None:
    text = README.read_text()
    missing = [_env_name(f) for f in Settings.model_fields if f"`{_env_name(f)}`" not in text]
    assert missing == []


def test_the_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text and "make test" in text
