"""Benchmark the feedback coder on the validation split of the disaster-messages data.

    .venv/bin/python bench/coding.py ../shared/data/disaster_messages/train_validation.csv

Needs scikit-learn (`pip install -e .[bench]`) for the baseline only. The data is never copied
into this repository. In one run, on split == "validation":

- **coder**: the product as it runs: `messages.detection.detect(text, every shipped
  language)`, then `feedback.coding.default_coder().suggest(text, language)`; its codes are
  mapped to the 7 evaluation tags as the data's README says;
- **baseline**: TF-IDF (word 1-2-grams and character 2-5-grams within words, sublinear,
  min_df 2) + class-balanced logistic regression per tag, trained on split == "train" of the
  same text column, decision threshold 0.5 (nothing tuned on validation either).

Both on the English `message` and on the `original` text of the rows that have one. Prints
precision, recall, F1 per tag and the macro average, then the time per message.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedback.coding import Suggestion, default_coder
from messages.detection import detect, preload
from messages.languages import language_codes

# Gold: the dataset labels that make a tag (README of the data).
GOLD: dict[str, tuple[str, ...]] = {
    "water": ("water",),
    "food": ("food",),
    "shelter": ("shelter", "clothing"),
    "health": ("medical_help", "medical_products", "hospitals"),
    "transport": ("transport",),
    "displacement": ("refugees",),
    "protection": ("security", "missing_people"),
}
# Predicted: the codes that count as a tag (README of the data).
PREDICTED: dict[str, Callable[[Suggestion], bool]] = {
    "water": lambda s: "wash" in s.clusters,
    "food": lambda s: "food_security" in s.clusters,
    "shelter": lambda s: 2 in s.mcof_sectors or "shelter" in s.clusters,
    "health": lambda s: 4 in s.mcof_sectors or "health" in s.clusters,
    "transport": lambda s: 3 in s.mcof_sectors,
    "displacement": lambda s: 1 in s.mcof_sectors or "cccm" in s.clusters,
    "protection": lambda s: (
        10 in s.mcof_sectors or bool({"protection", "child_protection", "gbv"} & set(s.clusters))
    ),
}
TIMED_BASELINE = 300  # messages the baseline classifies one at a time, as the bot would


@dataclass
class Result:
    name: str
    predicted: list[set[str]]
    seconds_per_message: float


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path)
    args = parser.parse_args(argv)
    with args.csv.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    preload()
    default_coder()
    for column in ("message", "original"):
        train = [r for r in rows if r["split"] == "train" and r[column].strip()]
        test = [r for r in rows if r["split"] == "validation" and r[column].strip()]
        gold = [gold_tags(r) for r in test]
        texts = [r[column] for r in test]
        print(f"\n== {column}: {len(test)} validation rows (baseline trained on {len(train)})")
        coder, languages = run_coder(texts)
        baseline = run_baseline([r[column] for r in train], [gold_tags(r) for r in train], texts)
        print("detected languages: " + ", ".join(f"{k}={v}" for k, v in languages))
        for result in (coder, baseline):
            report(result, gold)
        ratio = coder.seconds_per_message / baseline.seconds_per_message
        print(
            f"time per message: coder {coder.seconds_per_message * 1000:.2f} ms (detection "
            f"included), baseline {baseline.seconds_per_message * 1000:.2f} ms; ratio {ratio:.2f}"
        )
    return 0


def gold_tags(row: dict[str, str]) -> set[str]:
    return {tag for tag, labels in GOLD.items() if any(row[label] == "1" for label in labels)}


def run_coder(texts: Sequence[str]) -> tuple[Result, list[tuple[str, int]]]:
    coder, enabled = default_coder(), language_codes()
    predicted: list[set[str]] = []
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for text in texts:
        language = detect(text, enabled).language
        suggestion = coder.suggest(text, language)
        predicted.append({tag for tag, test in PREDICTED.items() if test(suggestion)})
        counts[str(language)] = counts.get(str(language), 0) + 1
    elapsed = (time.perf_counter() - started) / max(len(texts), 1)
    return Result("coder", predicted, elapsed), sorted(counts.items(), key=lambda kv: -kv[1])


def run_baseline(
    train_texts: Sequence[str], train_gold: Sequence[set[str]], texts: Sequence[str]
) -> Result:
    import numpy as np
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizers = [
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    ]
    matrix = hstack([v.fit_transform(train_texts) for v in vectorizers]).tocsr()
    models = {}
    for tag in GOLD:
        labels = np.array([tag in g for g in train_gold], dtype=int)
        models[tag] = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(
            matrix, labels
        )

    def classify(batch: Sequence[str]) -> list[set[str]]:
        features = hstack([v.transform(batch) for v in vectorizers]).tocsr()
        scores = {tag: model.decision_function(features) for tag, model in models.items()}
        return [{tag for tag in GOLD if scores[tag][i] >= 0} for i in range(len(batch))]

    predicted = classify(texts)
    started = time.perf_counter()
    for text in texts[:TIMED_BASELINE]:
        classify([text])
    elapsed = (time.perf_counter() - started) / max(min(len(texts), TIMED_BASELINE), 1)
    return Result("baseline TF-IDF+LR", predicted, elapsed)


def report(result: Result, gold: Sequence[set[str]]) -> None:
    print(f"\n{result.name}")
    print(f"{'tag':13} {'P':>6} {'R':>6} {'F1':>6} {'gold':>5}")
    f1s = []
    for tag in GOLD:
        tp = sum(tag in p and tag in g for p, g in zip(result.predicted, gold, strict=True))
        predicted = sum(tag in p for p in result.predicted)
        actual = sum(tag in g for g in gold)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        print(f"{tag:13} {precision:6.3f} {recall:6.3f} {f1:6.3f} {actual:5d}")
    print(f"{'macro F1':13} {'':6} {'':6} {sum(f1s) / len(f1s):6.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
