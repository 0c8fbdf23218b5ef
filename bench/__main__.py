"""`python -m bench [--smoke] [NAME ...]`: run benchmarks, print a table, write JSON.

Each benchmark measures its baseline in the same run, so figures are ratios that hold from one
machine to another better than absolute numbers. `--smoke` uses tiny counts: CI runs it so the
benchmarks keep working; it is never a timing assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from bench import (
    fanout,
    fanout_instructions,
    fanout_postgres,
    fanout_sink,
    instructions,
    proxy,
    scaling,
    store_scale,
    uploads,
)


async def fanout_with_sink(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    """`fanout`'s HTTP figures, then its sink case (NATS JetStream) in a gateway of its own."""
    results = await fanout.run(workdir, smoke=smoke)
    results.update(await fanout_sink.run(workdir, smoke=smoke))
    return results


BENCHES = {
    "proxy": proxy.run,
    "proxy-instructions": instructions.run,
    "uploads": uploads.run,
    "fanout": fanout_with_sink,
    "fanout-postgres": fanout_postgres.run,
    "fanout-instructions": fanout_instructions.run,
    "scaling": scaling.run,
    "store-scale": store_scale.run,
}
RESULTS = Path(__file__).resolve().parent / "results"


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", choices=[[], *BENCHES], default=[])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, to check they run")
    parser.add_argument("--million", action="store_true", help="store-scale: also at 1M events")
    parser.add_argument(
        "--size", type=int, help="store-scale: the larger history (events; default 100k)"
    )
    args = parser.parse_args()
    if args.million:
        os.environ["STORE_SCALE_MILLION"] = "1"
    if args.size:
        os.environ["STORE_SCALE_SIZE"] = str(args.size)
    names = args.names or list(BENCHES)
    machine = {"cores": os.cpu_count(), "python": platform.python_version()}
    results: dict[str, Any] = {"machine": machine, "smoke": args.smoke}
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as workdir:
            results[name] = await BENCHES[name](Path(workdir), smoke=args.smoke)
        print(f"\n{name} ({machine['cores']} cores{', smoke' if args.smoke else ''})")
        for key, value in results[name].items():
            if not isinstance(value, dict):
                print(f"  {key:<40} {value}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("smoke.json" if args.smoke else "latest.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(RESULTS.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
