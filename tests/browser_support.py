"""Headless Chromium (Debian's chromium + chromium-driver) through Selenium, for page tests.

Nothing here downloads a browser: Selenium Manager is kept offline, and a missing Chromium is
installed with apt-get where that can run, else the test is skipped saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PACKAGES = ("chromium", "chromium-driver")
# Screenshots land here (CI keeps the folder as the run's artifacts); override with the variable.
ARTIFACTS = Path(
    os.environ.get("BACKCHANNEL_TEST_ARTIFACTS", Path(__file__).resolve().parent / "artifacts")
)


def _binaries() -> tuple[str, str] | None:
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _install() -> str:
    """Install Debian's chromium and chromium-driver when missing; returns why not, or ''."""
    if _binaries() is not None:
        return ""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return "chromium is not installed and apt-get cannot run here (not Debian, or not root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = [apt, "install", "-y", "--no-install-recommends", *PACKAGES]
    for attempt in (command, [apt, "update"], command):
        subprocess.run(attempt, env=env, capture_output=True, timeout=900, check=False)
        if attempt is command and _binaries() is not None:
            return ""
    return "apt-get could not install chromium and chromium-driver"


@pytest.fixture(scope="session")
def browser_binaries() -> tuple[str, str]:
    """(browser, driver) paths; installed through apt-get on a fresh machine."""
    reason = _install()
    found = _binaries()
    if reason or found is None:
        pytest.skip(reason or "chromium not found")
    return found


@contextmanager
def headless_chromium(
    binaries: tuple[str, str], width: int = 1280, height: int = 900
) -> Iterator[Any]:
    """A Selenium session of headless Chromium that records the page's console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser
    browser, driver = binaries
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        session.set_script_timeout(30)
        yield session
    finally:
        session.quit()


def console_errors(session: Any) -> list[str]:
    """The console's errors since the last call (CSP refusals and failed loads among them)."""
    return [entry["message"] for entry in session.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(session: Any, name: str) -> Path:
    """Save the whole page as `<artifacts>/<name>.png`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = session.execute_script("return document.documentElement.scrollHeight")
    width = session.get_window_size()["width"]
    session.set_window_size(width, min(max(int(height), 600), 8000))
    session.save_screenshot(str(path))
    return path
