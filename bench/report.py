"""Turn a bench/results/<timestamp>.json into a Markdown table and one PNG overview.

python bench/report.py bench/results/<timestamp>.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SERVERS = ("backchannel", "bare", "node")
LABELS = {"backchannel": "Backchannel", "bare": "python-socketio (bare)", "node": "Node socket.io"}
COLORS = {"backchannel": "#2b6cb0", "bare": "#a0aec0", "node": "#38a169"}

Getter = Callable[[dict[str, Any]], float | None]


def _get(data: dict[str, Any], *path: Any) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)  # type: ignore[assignment]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
        if data is None:
            return None
    return data


def _step(steps: list[dict[str, Any]] | None, field: str, key: str, value: int) -> Any:
    for s in steps or []:
        if s.get(field) == value:
            return s.get(key)
    return None


def rows(report: dict[str, Any]) -> list[tuple[str, str, dict[str, float | None]]]:
    """(metric, better, value per server)."""
    sc = report["scenarios"]
    out: list[tuple[str, str, dict[str, float | None]]] = []

    def add(metric: str, better: str, getter: Getter, scenario: str) -> None:
        values = {k: getter(v) for k, v in sc.get(scenario, {}).items() if "error" not in v}
        if any(v is not None for v in values.values()):
            out.append((metric, better, values))

    for n in _get(report, "params", "idle_steps") or [1000, 5000, 10000]:
        add(
            f"memory per idle connection, {n:,} (kB)",
            "lower",
            lambda r, n=n: _kb(_step(r.get("steps"), "connections", "bytes_per_connection", n)),
            "idle",
        )
    add(
        "connects per second (median of steps)",
        "higher",
        lambda r: _median([s.get("connects_per_second") for s in r.get("steps", [])]),
        "idle",
    )
    add(
        "server CPU per connect (µs)",
        "lower",
        lambda r: _median([s.get("server_cpu_us_per_connect") for s in r.get("steps", [])]),
        "idle",
    )
    add("storm: connected", "higher", lambda r: r.get("connected"), "storm")
    add("storm: refused or failed", "lower", lambda r: sum(r.get("failures", {}).values()), "storm")
    add("storm: connect p99 (ms)", "lower", lambda r: r.get("connect_p99_ms"), "storm")
    for i, rate in enumerate(_rates(sc)):
        add(
            f"1:1 send→receive p50 at {rate:,}/s (ms)",
            "lower",
            lambda r, i=i: _get(r, "rates", i, "p50_ms"),
            "latency",
        )
        add(
            f"1:1 send→receive p99 at {rate:,}/s (ms)",
            "lower",
            lambda r, i=i: _get(r, "rates", i, "p99_ms"),
            "latency",
        )
        add(
            f"1:1 delivered at {rate:,}/s offered (msg/s)",
            "higher",
            lambda r, i=i: _get(r, "rates", i, "delivered_per_second"),
            "latency",
        )
    add(
        "1:1 saturation, every message acked (msg/s)",
        "higher",
        lambda r: _get(r, "saturation", "acked_per_second"),
        "latency",
    )
    if _rates(sc):
        add(
            f"1:1 server CPU per message at {_rates(sc)[0]:,}/s (µs)",
            "lower",
            lambda r: _get(r, "rates", 0, "server_cpu_us_per_message"),
            "latency",
        )
    add(
        "1:1 server CPU per message at saturation (µs)",
        "lower",
        lambda r: _get(r, "saturation", "server_cpu_us_per_message"),
        "latency",
    )
    for variant, title in (("fanout_room", "room broadcast"), ("fanout_ppv", "ppv:broadcast")):
        for n in _fanout_steps(sc, variant):
            add(
                f"{title} to {n:,}: last delivery (ms)",
                "lower",
                lambda r, n=n: _step(r.get("steps"), "receivers", "last_delivery_ms", n),
                variant,
            )
            add(
                f"{title} to {n:,}: deliveries/s",
                "higher",
                lambda r, n=n: _step(r.get("steps"), "receivers", "deliveries_per_second", n),
                variant,
            )
            add(
                f"{title} to {n:,}: server CPU per delivery (µs)",
                "lower",
                lambda r, n=n: _step(r.get("steps"), "receivers", "server_cpu_us_per_delivery", n),
                variant,
            )
            if variant == "fanout_ppv":
                # Backchannel acks once every subscriber's copy is stored; the peers store none.
                add(
                    f"{title} to {n:,}: sender's ack (ms)",
                    "lower",
                    lambda r, n=n: _step(r.get("steps"), "receivers", "ack_ms", n),
                    variant,
                )
    add(
        "2 nodes on Redis: cross-node p50 overhead (ms)",
        "lower",
        lambda r: r.get("overhead_p50_ms"),
        "cluster",
    )
    add(
        "2 nodes on Redis: cross-node p99 overhead (ms)",
        "lower",
        lambda r: r.get("overhead_p99_ms"),
        "cluster",
    )
    return out


def _kb(value: float | None) -> float | None:
    return None if value is None else value / 1024


def _median(values: list[float | None]) -> float | None:
    xs = sorted(v for v in values if v is not None)
    return xs[len(xs) // 2] if xs else None


def _rates(sc: dict[str, Any]) -> list[int]:
    for r in sc.get("latency", {}).values():
        if "rates" in r:
            return [x["offered_per_second"] for x in r["rates"]]
    return []


def _fanout_steps(sc: dict[str, Any], variant: str) -> list[int]:
    for r in sc.get(variant, {}).values():
        if "steps" in r:
            return [s["receivers"] for s in r["steps"]]
    return []


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "—"
    return f"{ours / theirs:.2f}\u00d7"


def _first_line(error: str) -> str:
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return (lines[0] if lines else "?")[:300].replace("|", "/")


def markdown(report: dict[str, Any]) -> str:
    """The results table, with Backchannel's ratio to each peer."""
    m = report["machine"]
    lines = [
        f"Run {report['timestamp']} ({report['scale']} scale, {report.get('seconds', '?')} s): "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_bytes'] / 2**30:.0f} GiB, Linux "
        f"{m['kernel']}, Python {m['python']}, Node {m['node']}; server on CPU 0, load "
        f"generator on CPU 1; load average {m['load_average'][0]:.2f} before, "
        f"{m.get('load_average_after', [0])[0]:.2f} after.",
        "",
        "| metric | better | Backchannel | python-socketio (bare) | Node socket.io "
        "| vs bare | vs Node |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for metric, better, v in rows(report):
        ours = v.get("backchannel")
        lines.append(
            f"| {metric} | {better} | {_fmt(ours)} | {_fmt(v.get('bare'))} | "
            f"{_fmt(v.get('node'))} | {_ratio(ours, v.get('bare'))} | "
            f"{_ratio(ours, v.get('node'))} |"
        )
    lines += cluster_tables(report)
    lines += scaling_table(report)
    lines += failover_table(report)
    errors = [
        f"- {name} / {LABELS.get(kind, kind)}: {_first_line(r['error'])}"
        for name, per in report["scenarios"].items()
        for kind, r in per.items()
        if "error" in r
    ]
    if errors:
        lines += ["", "Scenarios that failed in this run:", *errors]
    lines += [
        "",
        "Ratios are Backchannel ÷ peer. Backchannel runs with JWT auth on every connect, "
        "Postgres persistence of every message and the per-user rate limiter; the peers "
        "authenticate nothing and store nothing. python-socketio (bare) is the library as it "
        "ships (it accepts the permessage-deflate the generator offers, like a browser's).",
    ]
    return "\n".join(lines) + "\n"


def cluster_tables(report: dict[str, Any]) -> list[str]:
    """Routed vs single-channel cluster traffic: what each message costs which node, and the
    cluster ceiling those costs project (one core per node)."""
    foreign = _get(report["scenarios"], "foreign", "backchannel")
    if not foreign or "modes" not in foreign:
        return []
    modes = foreign["modes"]
    out = [
        "",
        f"Cluster traffic (3 nodes on one Redis, {foreign['rate']} 1:1 msg/s between nodes A "
        "and C; B holds none of the users), server CPU per message:",
        "",
        "| mode | sender node A | receiver node C | uninvolved node B | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, m in modes.items():
        step = _get(m, "run", "rates", 0) or {}
        out.append(
            f"| {mode} | {_fmt(m['sender_cpu_us_per_message'])} µs | "
            f"{_fmt(m['receiver_cpu_us_per_message'])} µs | "
            f"{_fmt(m['foreign_cpu_us_per_message'])} µs | {_fmt(step.get('p50_ms'))} | "
            f"{_fmt(step.get('p99_ms'))} |"
        )
    projected = foreign.get("projected") or {}
    sizes = list(next(iter(projected.values()), {}))
    if sizes:
        out += [
            "",
            "Projected cluster 1:1 ceiling (msg/s, one core per node) from those costs:",
            "",
            "| mode | " + " | ".join(f"{n} node{'s' if n != '1' else ''}" for n in sizes) + " |",
            "| --- |" + " ---: |" * len(sizes),
        ]
        for mode, row in projected.items():
            out.append(f"| {mode} | " + " | ".join(_fmt(row[n]) for n in sizes) + " |")
    return out


def scaling_rows(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per routing mode, the measured rows of the `scaling` scenario, each with the ceiling
    its measured cluster CPU per message projects for one core per node."""
    scaling = _get(report["scenarios"], "scaling", "backchannel")
    if not scaling or "modes" not in scaling:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for mode, measured in scaling["modes"].items():
        rows = []
        for row in measured:
            cpu = row.get("cluster_cpu_us_per_message")
            ceiling = row["nodes"] * 1e6 / cpu if cpu else None
            rows.append({**row, "ceiling_per_second": ceiling})
        out[mode] = rows
    return out


def scaling_table(report: dict[str, Any]) -> list[str]:
    """Measured 1:1 throughput of 1, 2, 4 ... nodes beside the ceilings the costs project."""
    modes = scaling_rows(report)
    if not modes:
        return []
    scaling = report["scenarios"]["scaling"]["backchannel"]
    cores = sorted({c for c in scaling.get("cpus", [])})
    out = [
        "",
        f"Cluster scaling, measured: {scaling['pairs']:,} 1:1 pairs spread over the nodes, "
        "256 messages in flight, every message stored and acked; the nodes pinned to "
        f"CPU {','.join(cores)}"
        + (
            " (all on one core: more nodes here measure what the cluster's own traffic costs, "
            "not added capacity; the ceiling column projects one core per node from the "
            "measured CPU per message)"
            if len(cores) == 1
            else ""
        )
        + ":",
        "",
        "| mode | nodes | cores | acked msg/s | cluster CPU per message | p50 / p99 ms "
        "| errors | ceiling, one core per node (msg/s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, rows in modes.items():
        for r in rows:
            out.append(
                f"| {mode} | {r['nodes']} | {r.get('cores', '—')} | "
                f"{_fmt(r.get('acked_per_second'))} | "
                f"{_fmt(r.get('cluster_cpu_us_per_message'))} µs | "
                f"{_fmt(r.get('p50_ms'))} / {_fmt(r.get('p99_ms'))} | "
                f"{_fmt(r.get('errors'))} | {_fmt(r.get('ceiling_per_second'))} |"
            )
    return out


def scaling_svg(report: dict[str, Any]) -> str | None:
    """A hand-written SVG of the scaling table: measured msg/s (solid) and the one-core-per-
    node ceiling (dashed) against the node count, per mode. No plotting library needed."""
    modes = scaling_rows(report)
    if not modes:
        return None
    width, height, left, right, top, bottom = 720, 380, 70, 230, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    nodes = sorted({r["nodes"] for rows in modes.values() for r in rows})
    values = [
        v
        for rows in modes.values()
        for r in rows
        for v in (r.get("acked_per_second"), r.get("ceiling_per_second"))
        if v
    ]
    top_value = _nice_ceiling(max(values) if values else 1.0)

    def x(n: int) -> float:
        if len(nodes) == 1:
            return left + plot_w / 2
        return left + plot_w * nodes.index(n) / (len(nodes) - 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    colors = {"routed": "#2b6cb0", "single": "#dd6b20"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">'
        f"Cluster 1:1 throughput vs nodes — {_xml(report['timestamp'])}</text>",
    ]
    for k in range(5):
        v = top_value * k / 4
        parts.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" '
            'stroke="#e2e8f0"/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    for n in nodes:
        parts.append(
            f'<text x="{x(n):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{n}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">nodes</text>'
    )
    parts.append(
        f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {top + plot_h / 2})">messages/s</text>'
    )
    legend_y = top + 10
    for mode, rows in modes.items():
        color = colors.get(mode, "#4a5568")
        for key, dash, label in (
            ("acked_per_second", "", "measured"),
            ("ceiling_per_second", ' stroke-dasharray="6 4"', "ceiling (1 core per node)"),
        ):
            pts = [(x(r["nodes"]), y(r[key])) for r in rows if r.get(key)]
            if not pts:
                continue
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
            )
            parts += [
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in pts
            ]
            lx = left + plot_w + 12
            parts.append(
                f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 24}" y2="{legend_y}" '
                f'stroke="{color}" stroke-width="2"{dash}/>'
            )
            parts.append(f'<text x="{lx + 30}" y="{legend_y + 4}">{_xml(mode)} {label}</text>')
            legend_y += 18
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value`."""
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def failover_table(report: dict[str, Any]) -> list[str]:
    """The reconnect storm after a node is SIGKILLed."""
    f = _get(report["scenarios"], "failover", "backchannel")
    if not f or "sockets" not in f:
        return []
    return [
        "",
        f"Reconnect storm: {f['sockets']:,} sockets on node A, A SIGKILLed, every client "
        f"reconnects to node B with its `last_seq` ({f['replays_asked']:,} replay a "
        "conversation):",
        "",
        "| reconnected | all connected | reconnect p50 / p99 | all resynced | resync p50 / p99 "
        "| B's CPU per reconnect | reconnects/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {f['reconnected']:,} | {_fmt(f['all_connected_ms'])} ms | "
        f"{_fmt(f['reconnect_p50_ms'])} / {_fmt(f['reconnect_p99_ms'])} ms | "
        f"{_fmt(f['all_resynced_ms'])} ms | {_fmt(f['resync_p50_ms'])} / "
        f"{_fmt(f['resync_p99_ms'])} ms | {_fmt(f['survivor_cpu_us_per_reconnect'])} µs | "
        f"{_fmt(f['reconnects_per_second'])} |",
    ]


def chart(report: dict[str, Any], path: Path) -> None:
    """Four panels: memory, fan-out rate, CPU per delivery, 1:1 latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = report["scenarios"]
    foreign = _get(sc, "foreign", "backchannel") or {}
    projected = foreign.get("projected") or {}
    third_row = bool(projected or scaling_rows(report))
    fig, axes = plt.subplots(3 if third_row else 2, 2, figsize=(12, 12.5 if third_row else 8.5))
    fig.suptitle(
        f"Backchannel vs peers — {report['timestamp']} "
        f"({report['machine']['cores']} cores, server and generator on one core each)",
        fontsize=12,
    )

    def lines(ax: Any, scenario: str, x: str, y: str, scale: float = 1.0, style: str = "-") -> None:
        for kind in SERVERS:
            steps = _get(sc, scenario, kind, "steps") or []
            pts = [(s[x], s[y] * scale) for s in steps if s.get(y) is not None]
            if pts:
                xs, ys = zip(*pts, strict=True)
                label = LABELS[kind] + (" (ppv:broadcast)" if scenario == "fanout_ppv" else "")
                ax.plot(xs, ys, style, marker="o", color=COLORS[kind], label=label)

    ax = axes[0][0]
    lines(ax, "idle", "connections", "bytes_per_connection", 1 / 1024)
    ax.set_title("Memory per idle connection (lower is better)")
    ax.set_xlabel("open connections")
    ax.set_ylabel("kB per connection")
    ax.set_ylim(bottom=0)
    _legend(ax, 8)

    ax = axes[0][1]
    lines(ax, "fanout_room", "receivers", "deliveries_per_second", 1 / 1000)
    lines(ax, "fanout_ppv", "receivers", "deliveries_per_second", 1 / 1000, "--")
    ax.set_title("Broadcast deliveries per second (higher is better)")
    ax.set_xlabel("receivers")
    ax.set_ylabel("thousand deliveries/s")
    ax.set_ylim(bottom=0)
    _legend(ax, 8)

    ax = axes[1][0]
    lines(ax, "fanout_room", "receivers", "server_cpu_us_per_delivery")
    lines(ax, "fanout_ppv", "receivers", "server_cpu_us_per_delivery", 1.0, "--")
    ax.set_title("Server CPU per delivery (lower is better)")
    ax.set_xlabel("receivers")
    ax.set_ylabel("µs per delivery")
    ax.set_ylim(bottom=0)
    _legend(ax, 8)

    ax = axes[1][1]
    rates = _rates(sc)
    width = 0.8 / len(SERVERS)
    for j, kind in enumerate(SERVERS):
        r = _get(sc, "latency", kind) or {}
        for i in range(len(rates)):
            p50, p99 = _get(r, "rates", i, "p50_ms"), _get(r, "rates", i, "p99_ms")
            if p50 is None or p99 is None:
                continue
            x = i + (j - 1) * width
            ax.bar(
                x,
                p99,
                width,
                color=COLORS[kind],
                alpha=0.45,
                label=f"{LABELS[kind]} p99" if i == 0 else None,
            )
            label = f"{LABELS[kind]} p50" if i == 0 else None
            ax.bar(x, p50, width, color=COLORS[kind], label=label)
    ax.set_xticks(range(len(rates)), [f"{r:,} msg/s" for r in rates])
    ax.set_yscale("log")
    ax.set_title("1:1 send → receive latency (lower is better)")
    ax.set_ylabel("ms (log)")
    _legend(ax, 7, ncol=2)

    measured = scaling_rows(report)
    if projected or measured:
        ax = axes[2][0]
        mode_colors = {"routed": "#2b6cb0", "single": "#dd6b20"}
        for mode, row in projected.items():
            pts = [(int(n), v) for n, v in row.items() if v is not None]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(
                    xs,
                    ys,
                    ":",
                    marker="o",
                    color=mode_colors.get(mode),
                    label=f"{mode} (projected from 3 nodes)",
                )
        for mode, rows in measured.items():
            for key, style, label in (
                ("acked_per_second", "-", "measured"),
                ("ceiling_per_second", "--", "ceiling, its CPU/msg, 1 core per node"),
            ):
                pts = [(r["nodes"], r[key]) for r in rows if r.get(key)]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(
                        xs,
                        ys,
                        style,
                        marker="s",
                        color=mode_colors.get(mode),
                        label=f"{mode} ({label})",
                    )
        ax.set_title("Cluster 1:1 msg/s vs nodes, measured and projected (higher is better)")
        ax.set_xlabel("nodes")
        ax.set_ylabel("messages/s")
        ax.set_ylim(bottom=0)
        _legend(ax, 8)
        ax = axes[2][1]
        modes = foreign.get("modes") or {}
        names = list(modes)
        parts = ("sender_cpu_us_per_message", "receiver_cpu_us_per_message")
        parts += ("foreign_cpu_us_per_message",)
        for j, part in enumerate(parts):
            values = [modes[n][part] or 0 for n in names]
            xs = [i + (j - 1) * 0.27 for i in range(len(names))]
            ax.bar(xs, values, 0.27, label=part.split("_")[0])
        ax.set_xticks(range(len(names)), names)
        ax.set_title("Server CPU per cluster message, by node (lower is better)")
        ax.set_ylabel("µs per message")
        _legend(ax, 8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _legend(ax: Any, size: int, ncol: int = 1) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size, ncol=ncol)


def write_report(json_path: Path) -> tuple[Path, Path | None]:
    """Write <stamp>.md and <stamp>.png beside the JSON (and <stamp>-scaling.svg when the
    run has the scaling scenario)."""
    report = json.loads(json_path.read_text())
    md = json_path.with_suffix(".md")
    md.write_text(markdown(report))
    svg = scaling_svg(report)
    if svg is not None:
        json_path.with_name(f"{json_path.stem}-scaling.svg").write_text(svg)
    png = json_path.with_suffix(".png")
    try:
        import matplotlib  # noqa: F401  (`make bench` installs it: the `bench` extra)
    except ImportError:
        print("matplotlib is not installed: no PNG chart", file=sys.stderr)
        return md, None
    chart(report, png)
    return md, png


def update_readme(json_path: Path, readme: Path) -> None:
    """Put the run's table and chart between README's bench markers."""
    md, png = write_report(json_path)
    if png is None:
        raise SystemExit("the README's chart needs matplotlib: pip install -e '.[bench]'")
    text = readme.read_text()
    begin, end = "<!-- bench:begin -->\n", "<!-- bench:end -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    chart_path = png.resolve().relative_to(readme.resolve().parent)
    block = f"![benchmark chart]({chart_path})\n\n{md.read_text()}"
    readme.write_text(head + begin + block + end + tail)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--readme":
        update_readme(Path(args[1]), Path(__file__).resolve().parent.parent / "README.md")
    else:
        for arg in args:
            print(*write_report(Path(arg)))
