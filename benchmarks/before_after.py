"""bench_stream's and bench_views' figures of two checkouts (before and after a change), run by run, with the ratios
after / before of each round and their medians.

Each checkout runs its own benchmarks with its own code, interleaved (before, after, before, after ...), each writing
its JSON to a file of its own. A manifest (JSON lines) names the runs, one a line::

    {"bench": "stream", "side": "before", "round": 1, "path": "stream_before_r1.json", "commit": "7fd319d",
     "comparison": "7fd319d..7dba690", "load_start": "0.95 1.10 1.30 1/120 99", "load_mean": 1.2}

(``side``: before or after; ``comparison``: which pair of checkouts the run belongs to, where one manifest holds
several; ``load_start``: /proc/loadavg as the run started; ``load_mean``: the 1-minute load averaged over the run;
``started``: when the run began, which shows the order; ``comparison``, ``commit``, ``started`` and the loads are
optional.) Writes benchmarks/results/stream_before_after.json, or the path given after the manifest.

    python benchmarks/before_after.py runs.jsonl [output.json]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

STREAM_RUNS = ("trivial@0.05", "full@0.05", "trivial@0.1", "full@0.1", "full-views-off@0.1")
RUN_FIGURES = ("fps", "latency_p50_ms", "latency_p95_ms", "browser_long_task_ms_per_update")
SERVER_FIGURES = (
    "session_step_p50_ms", "session_step_p95_ms", "forward_in_stream_p50_ms", "raw_forward_idle_p50_ms",
    "knn_p50_ms", "page_outputs_p50_ms", "views_and_rest_of_step_p50_ms", "ratio_p50_step_over_forward_in_stream",
)  # fmt: skip


def stream_figures(results: dict) -> dict[str, float | None]:
    """The key figures of one bench_stream run, flat."""
    figures: dict[str, float | None] = {}
    for run in STREAM_RUNS:
        for name in RUN_FIGURES:
            figures[f"{run} {name}"] = results["runs"][run][name]
    for every in ("0.05", "0.1"):
        for name, value in results[f"ratios@{every}"].items():
            figures[f"{name}@{every}"] = value
    for name in SERVER_FIGURES:
        figures[f"server {name}"] = results["server_compute"][name]
    figures["server frames"] = results["server_compute"]["frames"]
    figures["bytes_per_frame p50"] = results["bytes_per_frame"]["p50"]
    return figures


def views_figures(results: dict) -> dict[str, float | None]:
    """The key figures of one bench_views run, flat."""
    figures: dict[str, float | None] = {
        "step_views_off p50_ms": results["step_views_off"]["p50_ms"],
        "step_views_off p95_ms": results["step_views_off"]["p95_ms"],
    }
    for mode, stats in results["step_views_on_by_mode"].items():
        figures[f"step_views_on {mode} p50_ms"] = stats["p50_ms"]
        figures[f"step_views_on {mode} p95_ms"] = stats["p95_ms"]
    figures["map_point p50_ms"] = results["map_point"]["p50_ms"]
    for mode, added in results["added_p50_ms"].items():
        figures[f"added {mode} p50_ms"] = added
    return figures


FIGURES = {"stream": stream_figures, "views": views_figures}


def ratios(after: dict, before: dict) -> dict[str, float | None]:
    """after / before of each figure; none for the ``added`` figures (a difference of two steps, near zero or
    below it: see :func:`differences`)."""

    def ratio(name: str) -> float | None:
        a, b = after[name], before[name]
        return a / b if not name.startswith("added") and a is not None and b is not None and a > 0 and b > 0 else None

    return {name: ratio(name) for name in before}


def differences(after: dict, before: dict) -> dict[str, float]:
    """after - before of the ``added`` figures (milliseconds)."""
    return {name: after[name] - before[name] for name in before if name.startswith("added")}


def medians(rows: list[dict]) -> dict[str, float | None]:
    """The median of each figure over the rounds (none where no round has it)."""
    return {
        name: statistics.median(values) if (values := [row[name] for row in rows if row[name] is not None]) else None
        for name in (rows[0] if rows else {})
    }


def compare(runs: list[dict], folder: Path) -> dict:
    """One pair of checkouts: each benchmark's rounds, before and after, their ratios and the medians over rounds."""
    compared: dict = {"commits": {}}
    for bench, figures_of in FIGURES.items():
        rounds: dict[int, dict] = {}
        for run in runs:
            if run["bench"] != bench:
                continue
            if run.get("commit"):
                compared["commits"][run["side"]] = run["commit"]
            results = json.loads((folder / run["path"]).read_text())
            entry = {"figures": figures_of(results)}
            for key in ("started", "load_start", "load_mean", "load_end"):
                if key in run:
                    entry[key] = run[key]
            if bench == "stream":
                entry["runtime"] = results.get("runtime")
            rounds.setdefault(run["round"], {})[run["side"]] = entry
        table = []
        for number in sorted(rounds):
            sides = rounds[number]
            row = {"round": number, **sides}
            if "before" in sides and "after" in sides:
                row["after_over_before"] = ratios(sides["after"]["figures"], sides["before"]["figures"])
                if added := differences(sides["after"]["figures"], sides["before"]["figures"]):
                    row["after_minus_before"] = added
            table.append(row)
        paired = [row for row in table if "after_over_before" in row]
        compared[bench] = {
            "rounds": table,
            "median_before": medians([row["before"]["figures"] for row in paired]),
            "median_after": medians([row["after"]["figures"] for row in paired]),
            "median_after_over_before": medians([row["after_over_before"] for row in paired]),
        }
    return compared


def combine(manifest: Path) -> dict:
    runs = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    by_comparison: dict[str, list[dict]] = {}
    for run in runs:
        by_comparison.setdefault(run.get("comparison", "before..after"), []).append(run)
    return {
        "what": "after / before of each round: the same benchmark, each checkout's own code, run interleaved "
        "(before, after per round) on the same machine",
        "comparisons": {name: compare(group, manifest.parent) for name, group in by_comparison.items()},
    }


def main() -> None:
    manifest = Path(sys.argv[1])
    output = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent / "results" / "stream_before_after.json"
    combined = combine(manifest)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(combined, indent=1))
    print(json.dumps(combined, indent=1))


if __name__ == "__main__":
    main()
