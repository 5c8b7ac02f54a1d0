"""Measured quality and speed of the similarity scorer (app/services/similarity.py, issue 19).

    .venv/bin/python bench/similarity_quality.py [--rule threshold=0.45 --rule place_conflict=0.25 ...]

Prints, as markdown tables (docs/similarity.md quotes them): precision, recall and F1 of ``same_issue`` per
split (tests/data/similar_pairs_dev.jsonl, tests/data/similar_pairs_held_out.jsonl) and per kind of pair; the
precision and recall at a sweep of thresholds; the same without the topic thesaurus (how much rests on it);
CPU microseconds per ``score`` and per ``features`` (process time, so that other work on a shared machine
counts less); the import's time and memory in a fresh interpreter.
No database, no network; a few seconds on one core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.services import similarity  # noqa: E402
from app.services.similarity import Rule, features, score  # noqa: E402

DATA = ROOT / "tests" / "data"
SPLITS = {"dev": "similar_pairs_dev.jsonl", "held_out": "similar_pairs_held_out.jsonl"}
KINDS = ["paraphrase", "dialect_typo", "other_place", "other_problem", "unrelated"]
SWEEP = [0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70]


def load(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def scored(pairs: list[dict], rule: Rule) -> list[tuple[dict, float]]:
    return [(p, score(features(**p["a"]), features(**p["b"]), rule)) for p in pairs]


def quality(results: list[tuple[dict, float]], threshold: float) -> tuple[float, float, float]:
    tp = sum(p["same"] and s >= threshold for p, s in results)
    fp = sum(not p["same"] and s >= threshold for p, s in results)
    fn = sum(p["same"] and s < threshold for p, s in results)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def report_quality(splits: dict[str, list[dict]], rule: Rule, title: str) -> None:
    results = {name: scored(pairs, rule) for name, pairs in splits.items()}
    print(f"\n### {title}\n")
    print("| split | pairs | same | precision | recall | F1 |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rows in results.items():
        p, r, f = quality(rows, rule.threshold)
        print(f"| {name} | {len(rows)} | {sum(x['same'] for x, _ in rows)} | {p:.3f} | {r:.3f} | {f:.3f} |")
    print("\nPer kind: the share of pairs judged the same issue (for paraphrase and dialect_typo this is the "
          "recall; for the other kinds it should be 0).\n")
    print("| kind | " + " | ".join(f"{name} (n)" for name in results) + " |")
    print("| --- | " + " | ".join("---:" for _ in results) + " |")
    for kind in KINDS:
        cells = []
        for rows in results.values():
            mine = [s for x, s in rows if x["kind"] == kind]
            accepted = sum(s >= rule.threshold for s in mine)
            cells.append(f"{accepted / len(mine):.3f} ({accepted}/{len(mine)})" if mine else "-")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print("\nThreshold sweep (precision / recall):\n")
    print("| threshold | " + " | ".join(results) + " |\n| ---: | " + " | ".join("---" for _ in results) + " |")
    for threshold in SWEEP:
        cells = [f"{p:.3f} / {r:.3f}" for p, r, _f in (quality(rows, threshold) for rows in results.values())]
        mark = " (default)" if abs(threshold - rule.threshold) < 1e-9 else ""
        print(f"| {threshold:.2f}{mark} | " + " | ".join(cells) + " |")


def report_speed(splits: dict[str, list[dict]]) -> None:
    sides = [side for pairs in splits.values() for p in pairs for side in (p["a"], p["b"])]
    typical = ("清水村三组的路灯坏了十几天了，晚上一片漆黑，孩子放学回家都害怕。我们反映过好几次，希望村里尽快"
               "安排电工来修一修，下雨天路上还有积水，老人出门很不方便，谢谢！")[:100]
    long = typical * 1000  # 100,000 characters
    print("\n### Speed (CPU time of this process, one core)\n\n| what | time |\n| --- | ---: |")
    for label, text, n in [("`features`, a typical 100-character form", typical, 3000),
                           ("`features`, a 100,000-character form", long, 20)]:
        started = time.process_time()
        for _ in range(n):
            features(text, "清水村")
        print(f"| {label} | {(time.process_time() - started) / n * 1e6:,.0f} µs |")
    started = time.process_time()
    feats = [features(**side) for side in sides]
    print(f"| `features`, the data set's {len(sides)} forms (mean {sum(len(s['content']) for s in sides) / len(sides):.0f}"
          f" characters) | {(time.process_time() - started) / len(sides) * 1e6:,.0f} µs |")
    # Reranking: one form against every other of the data set, as the ~200 candidates a database would send.
    pairs = [(feats[i], feats[j]) for i in range(0, len(feats), 5) for j in range(len(feats)) if i != j]
    sharing = [(a, b) for a, b in pairs if a.grams & b.grams]
    for label, batch in [("`score`, any pair", pairs), ("`score`, pairs sharing a bigram (candidates)", sharing)]:
        started = time.process_time()
        for a, b in batch:
            score(a, b)
        print(f"| {label} | {(time.process_time() - started) / len(batch) * 1e6:.1f} µs |")
    # The module's own cost: the standard modules it uses are loaded first, as the app has them already.
    probe = ("import os, re, unicodedata, math, collections, dataclasses, functools, time; "
             "unicodedata.normalize('NFKC', 'ａ'); unicodedata.is_normalized('NFKC', 'a'); "
             "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE'); "
             "m = rss(); t = time.process_time(); "
             "from app.services import similarity; similarity.features('三组路灯不亮'); "
             "print((time.process_time() - t) * 1000, (rss() - m) / 2**20)")
    runs = [subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
            for _ in range(3)]
    ms, mb = min(tuple(map(float, r.stdout.split())) for r in runs)
    print(f"| import and first `features` in a fresh interpreter | {ms:.0f} ms, +{mb:.1f} MB RSS |")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rule", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"override a field of the rule ({', '.join(f.name for f in fields(Rule))})")
    args = parser.parse_args()
    rule = replace(Rule(), **{k: float(v) for k, v in (item.split("=", 1) for item in args.rule)})
    splits = {name: load(file) for name, file in SPLITS.items()}
    print(f"Rule: {rule}")
    report_quality(splits, rule, "With the default rule" if rule == Rule() else "With the rule above")
    topics = similarity._topics
    similarity._topics = lambda text, folded: set()  # every form without topics: wording and places only
    try:
        report_quality(splits, rule, "Without the topic thesaurus (wording and places only)")
    finally:
        similarity._topics = topics
    report_speed(splits)


if __name__ == "__main__":
    main()
