"""Train the learned part of the feedback coder (feedback/data/model/) from labelled messages.

    .venv/bin/python scripts/train_coder.py ../shared/data/disaster_messages/train_validation.csv

Needs scikit-learn (`pip install -e .[bench]`); the bot does not: inference in
feedback/coding.py is pure Python and uses the very same `features()` imported here.

Only rows with split == "train" are read; the validation split is left to bench/coding.py.
Two models, each a logistic regression per evaluation tag:
- `english`: the English `message` text, serves "en";
- `original`: the text as sent (Haitian Creole and French SMS, some romanised Urdu), serves
  "ht" only: French is a minority of these Haitian SMS and unlike French feedback from
  migrants (a check on the validation split agreed: on French-detected SMS the model did
  no better than the French lexicon alone).
Per tag: (1) logistic regression on word and character n-grams (class-balanced, L2), keeping
the TOP_K largest weights; (2) a two-input logistic regression that combines the out-of-fold
score of (1) with the tag's lexicon confidence (feedback/data/lexicons/), so the lexicons count
as much as they earned on the training data; (3) the decision threshold that maximises F1 on
out-of-fold scores of (2), counting a lexicon hit as suggested where the coder lets it stand
(`veto` below). Both combination and threshold come from cross-validation on the train split
only; a tag whose out-of-fold F1 does not beat the lexicon hits alone is left to the
lexicons (use_model = false). The result is written as reviewable text: <name>.toml
(languages, tags and the codes each suggests, intercepts, thresholds, lexicon weights,
provenance) and <name>.csv (tag, feature, weight). Output is deterministic for the same data
and lexicons.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedback.coding import (
    SUGGEST_AT,
    Coder,
    FeatureConfig,
    TagMapping,
    features,
    load_lexicons,
)
from messages.detection import detect
from messages.languages import language_codes

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "feedback" / "data" / "model"
FOLDS = 5
SEED = 0
C = 1.0  # L2 strength of the n-gram model; 0.3, 1, 3, 10 scored within 0.01 of each other
TOP_K = 6000  # weights kept per tag (largest magnitude): bounds the files, costs ~0.01 F1
MIN_DF = 2  # a feature seen in one training message only is noise
DIGITS = 4  # significant digits written
LEXICON_STANDS = 1e6  # the out-of-fold score of a row a lexicon hit decides

# The evaluation tags (see the data's README): the dataset labels that make a tag gold, and
# the codes a predicted tag suggests. Each code below counts as that tag in the benchmark.
TAGS: dict[str, tuple[str, ...]] = {
    "water": ("water",),
    "food": ("food",),
    "shelter": ("shelter", "clothing"),
    "health": ("medical_help", "medical_products", "hospitals"),
    "transport": ("transport",),
    "displacement": ("refugees",),
    "protection": ("security", "missing_people"),
}
# `veto`: where the dataset's label names the same need as the code (water, food, shelter,
# health), the model, which weighs the lexicon hit, may overrule it. Where the label is only a
# proxy for the code (`transport` also covers roads and infrastructure; `refugees` is not camp
# management; security and missing people are a small part of protection), a lexicon hit
# stands and the model only adds what the lexicons missed.
MAPPING: dict[str, dict[str, Any]] = {
    "water": {"clusters": ["wash"], "veto": True},
    "food": {"clusters": ["food_security"], "veto": True},
    "shelter": {"clusters": ["shelter"], "sectors": [2], "veto": True},
    "health": {"clusters": ["health"], "sectors": [4], "veto": True},
    "transport": {"sectors": [3], "veto": False},
    "displacement": {"clusters": ["cccm"], "sectors": [1], "veto": False},
    "protection": {"clusters": ["protection"], "sectors": [10], "veto": False},
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    column: str
    languages: tuple[str, ...]
    description: str


SPECS = (
    ModelSpec("english", "message", ("en",), "English `message` text (translated where needed)"),
    ModelSpec(
        "original",
        "original",
        ("ht",),
        "`original` text as sent: Haitian Creole and French SMS (Haiti 4636), some romanised Urdu",
    ),
)


@dataclass(frozen=True)
class TagModel:
    weights: dict[str, float]  # feature -> weight, already scaled by the combination
    intercept: float
    lexicon_weight: float
    threshold: float
    cv_f1: float  # F1 of the coder's rule for the tag, out of fold on the train split
    lexicon_f1: float  # F1 of the lexicon hits alone on the train split
    used: bool  # the model beat the lexicons alone; otherwise the coder ignores it


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="train_validation.csv (only split=train is read)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = read_train_rows(args.csv)
    digest = hashlib.sha256(args.csv.read_bytes()).hexdigest()
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in SPECS:
        started = time.perf_counter()
        models, count = train(spec, rows)
        write_model(args.out, spec, models, count, digest)
        print(f"{spec.name}: {count} rows, {time.perf_counter() - started:.0f} s")
        for tag, model in models.items():
            print(
                f"  {tag:13} CV F1 {model.cv_f1:.3f}, lexicons alone {model.lexicon_f1:.3f}"
                f"{'' if model.used else ' (model not used)'}; {len(model.weights)} features"
            )
    return 0


def read_train_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["split"] == "train"]


def train(spec: ModelSpec, rows: Sequence[dict[str, str]]) -> tuple[dict[str, TagModel], int]:
    rows = [row for row in rows if row[spec.column].strip()]
    texts = [row[spec.column] for row in rows]
    vectorizer = DictVectorizer(sort=True)
    matrix = vectorizer.fit_transform([features(text) for text in texts]).tocsr()
    names = np.asarray(vectorizer.feature_names_)
    frequent = np.asarray((matrix > 0).sum(axis=0)).ravel() >= MIN_DF
    matrix, names = matrix[:, frequent], names[frequent]
    lexical = lexicon_evidence(texts, spec)
    models = {}
    for index, (tag, labels) in enumerate(TAGS.items()):
        gold = np.array([any(row[label] == "1" for label in labels) for row in rows], dtype=int)
        veto = bool(MAPPING[tag]["veto"])
        models[tag] = train_tag(matrix, names, gold, lexical[:, index], veto)
    return models, len(rows)


def lexicon_evidence(texts: Sequence[str], spec: ModelSpec) -> np.ndarray[Any, Any]:
    """Per text and tag, the lexicon confidence the coder will see at inference time.

    The language is what the product would pass: the model's language for English, the
    detected one for the original texts (they are many languages' SMS).
    """
    coder = Coder(load_lexicons())
    mappings = [TagMapping.from_dict(MAPPING[tag]) for tag in TAGS]
    enabled = language_codes()
    out = np.zeros((len(texts), len(TAGS)))
    for row, text in enumerate(texts):
        language = spec.languages[0] if spec.name == "english" else detect(text, enabled).language
        found = coder.lexicon_scores(text, language)
        for col, mapping in enumerate(mappings):
            out[row, col] = mapping.evidence(found, coder.taxonomy)
    return out


def train_tag(
    matrix: sparse.csr_matrix,
    names: np.ndarray[Any, Any],
    gold: np.ndarray[Any, Any],
    lexical: np.ndarray[Any, Any],
    veto: bool,
) -> TagModel:
    folds = list(KFold(FOLDS, shuffle=True, random_state=SEED).split(gold))
    scores = np.zeros(len(gold))
    results = Parallel(n_jobs=-1)(delayed(fit_ngrams)(matrix[a], gold[a]) for a, _ in folds)
    for (_, held), (weights, intercept) in zip(folds, results, strict=True):
        scores[held] = matrix[held] @ weights + intercept
    stacked = np.column_stack([scores, lexical])
    combined = out_of_fold(stacked, gold, folds, fit_combination)
    if not veto:  # the coder suggests the tag on a lexicon hit whatever the model says
        combined[lexical >= SUGGEST_AT] = LEXICON_STANDS
    threshold, cv_f1 = best_threshold(gold, combined)
    lexicon_f1 = f1_score(gold, lexical >= SUGGEST_AT)
    scale, lexicon_weight, offset = fit_combination(stacked, gold)
    weights, intercept = fit_ngrams(matrix, gold)
    kept = np.flatnonzero(weights)
    return TagModel(
        weights={str(names[i]): float(scale * weights[i]) for i in kept},
        intercept=float(scale * intercept + offset),
        lexicon_weight=float(lexicon_weight),
        threshold=float(threshold),
        cv_f1=float(cv_f1),
        lexicon_f1=lexicon_f1,
        used=cv_f1 > lexicon_f1,
    )


def f1_score(gold: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any]) -> float:
    true_positives = float(np.sum(gold * predicted))
    total = float(np.sum(gold) + np.sum(predicted))
    return 2 * true_positives / total if total else 0.0


def fit_ngrams(matrix: sparse.csr_matrix, gold: np.ndarray[Any, Any]) -> tuple[Any, float]:
    """Class-balanced L2 logistic regression, all but the TOP_K largest weights set to zero."""
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
    model.fit(matrix, gold)
    weights = model.coef_[0].copy()
    if len(weights) > TOP_K:
        cut = np.sort(np.abs(weights))[-TOP_K]
        weights[np.abs(weights) < cut] = 0.0
    return weights, float(model.intercept_[0])


def fit_combination(
    stacked: np.ndarray[Any, Any], gold: np.ndarray[Any, Any]
) -> tuple[float, float, float]:
    """score = scale x n-gram score + lexicon weight x lexicon confidence + offset."""
    model = LogisticRegression(C=1.0, max_iter=1000).fit(stacked, gold)
    scale, lexicon_weight = (float(w) for w in model.coef_[0])
    return scale, lexicon_weight, float(model.intercept_[0])


def out_of_fold(
    stacked: np.ndarray[Any, Any],
    gold: np.ndarray[Any, Any],
    folds: Sequence[tuple[Any, Any]],
    fit: Callable[[Any, Any], tuple[float, float, float]],
) -> np.ndarray[Any, Any]:
    out = np.zeros(len(gold))
    for train_rows, held in folds:
        scale, lexicon_weight, offset = fit(stacked[train_rows], gold[train_rows])
        out[held] = scale * stacked[held, 0] + lexicon_weight * stacked[held, 1] + offset
    return out


def best_threshold(gold: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> tuple[float, float]:
    """The score cut with the best F1 (midway between two neighbouring scores)."""
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], gold[order]
    true_positives = np.cumsum(hits)
    f1 = 2 * true_positives / (np.arange(1, len(hits) + 1) + hits.sum())
    best = int(np.argmax(f1))
    following = ranked[min(best + 1, len(ranked) - 1)]
    cut = (ranked[best] + following) / 2
    # When the lexicon hits alone do best, the model adds nothing: a cut just above its
    # highest score says so without writing a placeholder number.
    highest = scores[scores < LEXICON_STANDS].max(initial=0.0)
    return float(min(cut, highest + 1.0)), float(f1[best])


def _number(value: float) -> str:
    return f"{value:.{DIGITS}g}"


def write_model(
    folder: Path, spec: ModelSpec, models: Mapping[str, TagModel], count: int, digest: str
) -> None:
    header = provenance(spec, count, digest)
    (folder / f"{spec.name}.toml").write_text(header + meta_toml(spec, models), encoding="utf-8")
    lines = [*header.splitlines(), "tag,feature,weight"]
    for tag, model in models.items():
        for feature, weight in sorted(model.weights.items()):
            if float(_number(weight)) != 0.0:
                lines.append(f"{tag},{_csv_field(feature)},{_number(weight)}")
    (folder / f"{spec.name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _csv_field(value: str) -> str:
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def provenance(spec: ModelSpec, count: int, digest: str) -> str:
    lexicons = hashlib.sha256()
    for path in sorted((ROOT / "feedback" / "data" / "lexicons").glob("*.toml")):
        lexicons.update(path.name.encode() + path.read_bytes())
    return (
        f"# Crisis Comms feedback coder, learned model '{spec.name}': {spec.description}.\n"
        "# Written by scripts/train_coder.py (do not edit by hand; retrain when the lexicons\n"
        "# change, since the lexicon weights were fitted to them). Logistic regression per tag\n"
        f"# on feedback.coding.features(); C={C}, min_df={MIN_DF}, top {TOP_K} weights per tag;\n"
        f"# lexicon combination and thresholds from {FOLDS}-fold CV on the train split only.\n"
        f"# Data: {count} train rows of train_validation.csv, sha256 {digest[:16]}; lexicons\n"
        f"# sha256 {lexicons.hexdigest()[:16]}; scikit-learn {sklearn.__version__}.\n"
    )


def meta_toml(spec: ModelSpec, models: Mapping[str, TagModel]) -> str:
    tags = list(models)
    lines = [
        f'name = "{spec.name}"',
        "languages = [" + ", ".join(f'"{lang}"' for lang in spec.languages) + "]",
        "tags = [" + ", ".join(f'"{tag}"' for tag in tags) + "]",
        "",
        "[features]",
        *(f"{key} = {value}" for key, value in vars(FeatureConfig()).items()),
    ]
    for table in ("intercept", "threshold", "lexicon_weight", "cv_f1", "lexicon_f1"):
        values = [f"{tag} = {_number(getattr(models[tag], table))}" for tag in tags]
        lines += ["", f"[{table}]", *values]
    for tag in tags:
        lines += ["", f"[mapping.{tag}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in MAPPING[tag].items()]
        lines.append(f"use_model = {_toml_value(models[tag].used)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]"


if __name__ == "__main__":
    raise SystemExit(main())
