"""The bench's own machinery: the scaling report from a known result, and a smoke run.

These check that `make bench` works and reports what it measured, not how fast anything is
(benchmarks live in bench/, never in the suite).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.services import RunServices

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _report_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scaling_run() -> dict[str, Any]:
    row = {"cores": 1, "p50_ms": 10.0, "p99_ms": 40.0, "errors": 0}
    return {
        "timestamp": "20260101T000000Z",
        "scale": "smoke",
        "machine": {
            "cpu": "test",
            "cores": 2,
            "memory_bytes": 2**30,
            "kernel": "k",
            "python": "3.11",
            "node": "v20",
            "load_average": [0.5],
        },
        "scenarios": {
            "scaling": {
                "backchannel": {
                    "pairs": 20,
                    "cpus": ["0"],
                    "modes": {
                        "single": [
                            {
                                **row,
                                "nodes": 1,
                                "acked_per_second": 800.0,
                                "cluster_cpu_us_per_message": 500.0,
                            },
                            {
                                **row,
                                "nodes": 2,
                                "acked_per_second": 600.0,
                                "cluster_cpu_us_per_message": 800.0,
                            },
                        ],
                        "routed": [
                            {
                                **row,
                                "nodes": 1,
                                "acked_per_second": 790.0,
                                "cluster_cpu_us_per_message": 510.0,
                            },
                            {
                                **row,
                                "nodes": 2,
                                "acked_per_second": 700.0,
                                "cluster_cpu_us_per_message": 625.0,
                            },
                        ],
                    },
                }
            }
        },
    }


def test_the_scaling_table_shows_measured_rates_beside_the_one_core_per_node_ceiling() -> None:
    report = _report_module()
    text = report.markdown(_scaling_run())
    assert "Cluster scaling, measured" in text and "all on one core" in text
    # 2 nodes x 1e6 us / 625 us per message: the routed ceiling with a core per node.
    assert "| routed | 2 | 1 | 700 | 625 µs | 10.0 / 40.0 | 0.00 | 3,200 |" in text
    assert "| single | 1 | 1 | 800 | 500 µs | 10.0 / 40.0 | 0.00 | 2,000 |" in text


def test_the_scaling_chart_is_an_svg_with_a_line_per_mode_and_measure() -> None:
    report = _report_module()
    svg = report.scaling_svg(_scaling_run())
    assert svg is not None and svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<polyline") == 4  # measured and ceiling, routed and single
    assert "routed measured" in svg and "single ceiling (1 core per node)" in svg
    assert report.scaling_svg({"scenarios": {}}) is None


@pytest.mark.slow
@pytest.mark.timeout(300)  # five server starts on a loaded machine
def test_a_smoke_run_of_the_scaling_scenario_measures_every_row(
    services: RunServices, tmp_path: Path
) -> None:
    if shutil.which("node") is None or not (BENCH / "node_modules" / "ws").is_dir():
        pytest.skip("node and bench/node_modules are needed (make bench installs them)")
    if shutil.which("taskset") is None:
        pytest.skip("taskset is needed to pin the nodes")
    admin = services.database_url.rsplit("/", 1)[0] + "/postgres"
    env = {**os.environ, "BENCH_PG": admin, "BENCH_REDIS": services.redis_url}
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--scale",
            "smoke",
            "--only",
            "backchannel",
            "--scenarios",
            "scaling",
            "--results",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = tmp_path.glob("*.json")
    scaling = json.loads(result.read_text())["scenarios"]["scaling"]["backchannel"]
    assert "error" not in scaling, scaling
    for mode in ("single", "routed"):
        rows = scaling["modes"][mode]
        assert [r["nodes"] for r in rows] == [1, 2]
        for r in rows:
            assert r["acked_per_second"] > 0 and r["errors"] == 0, (mode, r)
            assert r["pairs"] == 20 and not r["connect_failures"], (mode, r)
    assert "Cluster scaling, measured" in result.with_suffix(".md").read_text()
    assert (tmp_path / f"{result.stem}-scaling.svg").read_text().startswith("<svg")
