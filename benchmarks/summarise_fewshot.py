"""One compact table from several bench_fewshot result files (backbone x augmentation x query flip).

Usage: ``python benchmarks/summarise_fewshot.py RESULT.json [RESULT.json ...] [--output FILE.md]``

Per file and background: the plain shipped classifier (today's defaults, no augmentation; the same in every file,
so it shows that the splits match), the chosen rule and the baseline as run in that configuration, the best
candidate by 10-shot accuracy and the best by open-set mean, and which of the issue's targets each row meets
(10-shot >= plain baseline 10-shot + 0.03, 5-shot >= plain baseline 10-shot, known accuracy >= 0.85, open-set
mean >= 0.85).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fewshot import BASELINE, CHOSEN  # noqa: E402

HEADER = (
    "| configuration | row | 1-shot | 5-shot | 10-shot | known acc. | unknown recall | mean | AUROC | targets met |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def met(figures: dict, plain_baseline: dict) -> str:
    reference = plain_baseline["closed"]["10-shot"]["mean"]
    checks = (
        ("10-shot", figures["closed"]["10-shot"]["mean"] >= reference + 0.03),
        ("5-shot", figures["closed"]["5-shot"]["mean"] >= reference),
        ("known", figures["open"]["known_accuracy"] >= 0.85),
        ("mean", figures["open"]["mean"] >= 0.85),
    )
    return ", ".join(name for name, ok in checks if ok) or "none"


def cells(configuration: str, row: str, figures: dict, plain_baseline: dict) -> str:
    closed = " | ".join(f"{figures['closed'][f'{s}-shot']['mean']:.3f}" for s in (1, 5, 10))
    o = figures["open"]
    opened = " | ".join(f"{o[k]:.3f}" for k in ("known_accuracy", "unknown_recall", "mean", "auroc"))
    return f"| {configuration} | {row} | {closed} | {opened} | {met(figures, plain_baseline)} |"


def configuration_name(meta: dict) -> str:
    name = f"{meta['backbone']}, augment {meta.get('augment', 'none')}"
    return name + (", query flip" if meta.get("query_flip") else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    files = [json.loads(path.read_text()) for path in args.results]
    backgrounds = list(dict.fromkeys(b for f in files for b in f["backgrounds"]))
    lines = ["# Few-shot figures: backbones and enrolment augmentation", ""]
    lines += [
        "From " + ", ".join(f"`{p.name}`" for p in args.results) + f" ({files[0]['meta']['splits']} splits). "
        "`plain shipped` is teachable.knn.KNNClassifier with today's defaults on plain features (the reference in "
        "every file); `best 10-shot` and `best open mean` are the best of that configuration's grid of candidates.",
        "",
    ]
    for background in backgrounds:
        lines += [f"## Background: {background}", "", HEADER]
        for data in files:
            if background not in data["backgrounds"]:
                continue
            result = data["backgrounds"][background]
            rows = result["candidates"]
            by_name = {r["name"]: r for r in rows}
            plain_baseline = result["shipped"]["before"]
            name = configuration_name(data["meta"])
            lines.append(cells(name, "plain shipped (chosen rule)", result["shipped"]["now"], plain_baseline))
            lines.append(cells(name, f"chosen {CHOSEN.name}", by_name[CHOSEN.name], plain_baseline))
            lines.append(cells(name, f"baseline {BASELINE.name}", by_name[BASELINE.name], plain_baseline))
            best_closed = max(rows, key=lambda r: r["closed"]["10-shot"]["mean"])
            best_open = max(rows, key=lambda r: r["open"]["mean"])
            lines.append(cells(name, f"best 10-shot: {best_closed['name']}", best_closed, plain_baseline))
            lines.append(cells(name, f"best open mean: {best_open['name']}", best_open, plain_baseline))
        lines.append("")
    text = "\n".join(lines)
    if args.output:
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
