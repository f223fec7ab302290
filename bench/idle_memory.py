"""Memory per idle authenticated socket: the `idle` scenario alone, at any sizes, in a minute.

    python bench/idle_memory.py [--steps 1000,5000,10000] [--only backchannel,node] [--repeats 1]
    python bench/idle_memory.py --steps 2000 --trace allocations.txt

Same servers, pinning, database and load generator as `run.py` (server RSS delta / sockets).
`--trace` runs Backchannel under tracemalloc (twice the memory, a fraction of the connect rate,
so only for where the bytes go) and writes the allocation sites that grew between start-up and
the last step, grouped by traceback, in bytes per socket: the figures docs/performance.md
quotes. Nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from run import BENCH, LOADGEN_CPU, Bench, create_database, drop_database, log


def _open_sockets(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r'backchannel_socket_connections\{namespace="/chat"\} (\S+)', text)
    return int(float(found.group(1))) if found else 0


def measure(bench: Bench, kind: str, steps: list[int], trace: Path | None) -> dict[str, Any]:
    """One server, one climb through `steps`; with `trace`, the allocation diff at the top."""
    spec = {"scenario": "idle", "ns": "/chat", "steps": steps, "secret": bench.secret}
    if trace is not None:
        os.environ["BENCH_TRACEMALLOC"] = str(trace)
        spec["holdMs"] = 600_000
    try:
        with bench.server(kind) as srv:
            spec.update(url=srv.url, pid=srv.proc.pid, timeLimitSeconds=900)
            if trace is not None:
                trace.unlink(missing_ok=True)
                srv.proc.send_signal(signal.SIGUSR1)  # the baseline snapshot
            loadgen = subprocess.Popen(
                ["taskset", "-c", LOADGEN_CPU, "node", str(BENCH / "loadgen.js"), json.dumps(spec)],
                stdout=subprocess.PIPE,
                text=True,
            )
            if trace is None:
                out, _ = loadgen.communicate(timeout=960)
                result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
                return result
            deadline = time.monotonic() + 900
            while _open_sockets(srv.url) < steps[-1] and time.monotonic() < deadline:
                if loadgen.poll() is not None:
                    raise RuntimeError("the load generator ended early")
                time.sleep(1)
            time.sleep(3)
            srv.proc.send_signal(signal.SIGUSR1)  # the diff against the baseline
            while not trace.exists() and time.monotonic() < deadline:
                time.sleep(1)
            loadgen.kill()
            loadgen.wait()
            return {"trace": str(trace)}
    finally:
        os.environ.pop("BENCH_TRACEMALLOC", None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", default="1000,5000,10000")
    parser.add_argument("--only", default="backchannel")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--trace", type=Path, help="tracemalloc diff to this file (Backchannel)")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"backchannel-idle-{stamp}"
    workdir.mkdir(parents=True)
    bench = Bench({}, workdir)
    db_name = f"bench_idle_{stamp.lower()}_{os.getpid()}"
    try:
        log(f"creating database {db_name} with {steps[-1] + 10} users")
        bench.db = asyncio.run(create_database(db_name, steps[-1] + 10, 10))
        for kind in args.only.split(","):
            if args.trace is not None:
                measure(bench, kind, steps, args.trace.resolve())
                print(f"{kind}: allocation sites in {args.trace}")
                continue
            for _ in range(args.repeats):
                result = measure(bench, kind, steps, None)
                cells = [
                    f"{s['connections']:>6}: {s['bytes_per_connection'] / 1024:5.1f} kB"
                    f" ({s['connects_per_second']:.0f} connects/s, failures {s['failures']})"
                    for s in result["steps"]
                ]
                print(f"{kind:12} " + " | ".join(cells), flush=True)
    finally:
        asyncio.run(drop_database(db_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
