"""`docs/deploy/grafana-dashboard.json` reads only metrics a node really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.chat_support import node

DASHBOARD = Path(__file__).resolve().parents[2] / "docs/deploy/grafana-dashboard.json"
_METRIC = re.compile(r"\b((?:backchannel|process|python)_[a-z0-9_]+)")
_SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


async def test_every_panel_reads_a_metric_a_clustered_node_exports(
    cluster_settings: Settings,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "backchannel" and dashboard["panels"]
    async with node(cluster_settings) as server:
        async with server.api.session.get(f"{server.api.base_url}/metrics") as response:
            assert response.status == 200
        registry = server.server.app[RUNTIME].metrics.registry
        families = {family.name for family in registry.collect()}
    exported = {family + suffix for family in families for suffix in _SUFFIXES}

    used = {name for expr in _expressions(dashboard) for name in _METRIC.findall(expr)}
    assert used - exported == set(), "panels read metrics nobody exports"
    wanted = {
        "process_cpu_seconds_total",
        "python_gc_collections_total",
        "backchannel_db_pool_waiting",
        "backchannel_db_pool_in_use",
        "backchannel_cluster_linked",
        "backchannel_cluster_reconnects_total",
        "backchannel_redis_up",
        "backchannel_outbox_backlog",
        "backchannel_outbox_oldest_age_seconds",
        "backchannel_publish_stream_lag",
        "backchannel_publish_stream_dead_letters",
        "backchannel_socket_connections",
    }
    assert wanted <= used, wanted - used
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
