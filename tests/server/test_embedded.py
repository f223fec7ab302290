"""A newcomer with no DATABASE_URL gets a real embedded Postgres, started and stopped for them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil


def _backchannel(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["BACKCHANNEL_DATA_DIR"] = str(data_dir)
    env["BACKCHANNEL_LOG_LEVEL"] = "warning"
    return subprocess.run(
        [sys.executable, "-m", "backchannel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _postgres_serving(folder: Path) -> list[int]:
    return [
        proc.pid
        for proc in psutil.process_iter(attrs=["name", "cmdline"])
        if proc.info["name"] == "postgres" and str(folder) in " ".join(proc.info["cmdline"] or [])
    ]


def test_migrate_without_a_database_url_runs_an_embedded_postgres_and_stops_it(
    tmp_path: Path,
) -> None:
    result = _backchannel(tmp_path, "migrate")

    assert result.returncode == 0, result.stderr
    assert "applied" in result.stdout
    assert (tmp_path / "pg" / "PG_VERSION").read_text().strip() == "18"
    assert _postgres_serving(tmp_path / "pg") == []

    again = _backchannel(tmp_path, "migrate")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "applied 0 migration(s)"


def test_a_data_folder_from_another_postgres_major_is_refused_in_one_line(tmp_path: Path) -> None:
    old = tmp_path / "pg"
    old.mkdir()
    (old / "PG_VERSION").write_text("16\n")

    result = _backchannel(tmp_path, "migrate")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Postgres 16" in lines[0] and "BACKCHANNEL_EMBEDDED_PG_DIR" in lines[0]


def test_an_operator_command_from_a_folder_without_a_database_refuses_to_create_one(
    tmp_path: Path,
) -> None:
    result = _backchannel(tmp_path, "apikey", "list")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"no embedded database in {tmp_path / 'pg'}" in lines[0]
    assert "BACKCHANNEL_DATA_DIR" in lines[0]
    assert not (tmp_path / "pg").exists()
