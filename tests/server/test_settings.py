"""Settings are validated at start-up with one clear line per mistake, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from backchannel.server.settings import (
    Settings,
    describe_validation_error,
    ensure_jwt_secret,
    ensure_vapid_key,
)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backchannel", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_wrong_value_stops_with_one_line_naming_the_variable() -> None:
    result = _cli("check-config", env={"BACKCHANNEL_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("backchannel: invalid setting BACKCHANNEL_PORT")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_production_refuses_a_missing_or_placeholder_secret() -> None:
    result = _cli(
        "check-config", env={"BACKCHANNEL_ENV": "production", "BACKCHANNEL_JWT_SECRET": "secret"}
    )
    assert result.returncode == 2
    assert "BACKCHANNEL_JWT_SECRET" in result.stderr and "Traceback" not in result.stderr


def test_check_config_redacts_secrets() -> None:
    result = _cli(
        "check-config",
        env={
            "BACKCHANNEL_JWT_SECRET": "super-secret-value-" + "q" * 30,
            "DATABASE_URL": "postgresql://app:hunter2@db:5432/bc",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "super-secret-value" not in result.stdout and "hunter2" not in result.stdout
    assert '"jwt_secret": "***"' in result.stdout
    assert "postgresql://app:***@db:5432/bc" in result.stdout


def test_version_and_python_dash_m_agree() -> None:
    from backchannel import __version__

    assert _cli("version", env={}).stdout.strip() == __version__


def test_dev_mode_generates_and_keeps_a_jwt_secret(tmp_path: Path) -> None:
    first = ensure_jwt_secret(Settings(data_dir=tmp_path))
    second = ensure_jwt_secret(Settings(data_dir=tmp_path))
    assert first.jwt_secret_value() == second.jwt_secret_value()
    assert len(first.jwt_secret_value()) >= 32
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o777 == 0o600


def test_nodes_starting_together_on_one_data_folder_share_their_secrets(tmp_path: Path) -> None:
    # Two nodes (or a node and its CLI) starting at once used to race on O_EXCL: the second
    # one failed with FileExistsError and did not start.
    def start() -> tuple[str, str]:
        settings = ensure_vapid_key(ensure_jwt_secret(Settings(data_dir=tmp_path)))
        assert settings.vapid_private_key is not None
        return settings.jwt_secret_value(), settings.vapid_private_key.get_secret_value()

    with ThreadPoolExecutor(max_workers=8) as pool:
        started = list(pool.map(lambda _: start(), range(16)))
    assert len(set(started)) == 1
    assert (tmp_path / "vapid_private_key.pem").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jwt_secret", "vapid_private_key.pem"]


def test_validation_errors_name_environment_variables() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(platform_fee_percent=150, message_rate_limit="lots", jwt_secret=SecretStr("x"))
    line = describe_validation_error(caught.value)
    assert "BACKCHANNEL_PLATFORM_FEE_PERCENT" in line
    assert "BACKCHANNEL_MESSAGE_RATE_LIMIT" in line


def test_production_refuses_a_moderation_hook_without_a_real_secret() -> None:
    base = {
        "BACKCHANNEL_ENV": "production",
        "BACKCHANNEL_JWT_SECRET": "x" * 40,
        "DATABASE_URL": "postgresql://app@db:5432/bc",
        "BACKCHANNEL_MODERATION_HOOK_URL": "https://moderation.example/check",
    }
    result = _cli("check-config", env=base)
    assert result.returncode == 2
    assert "BACKCHANNEL_MODERATION_HOOK_SECRET" in result.stderr
    result = _cli("check-config", env={**base, "BACKCHANNEL_MODERATION_HOOK_SECRET": "h" * 40})
    assert result.returncode == 0, result.stderr
    assert "h" * 40 not in result.stdout and '"moderation_hook_secret": "***"' in result.stdout
