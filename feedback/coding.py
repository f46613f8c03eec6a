"""Suggested codes for a feedback item: IFRC type, MCOF sectors, IASC clusters, urgency.

Two signals, both shipped as reviewable data:
- lexicons (data/lexicons/<language>.toml): terms per code, matched as whole words after
  normalisation; one distinct term gives a code a modest confidence, more terms more;
- learned linear models (data/model/, written by scripts/train_coder.py from labelled crisis
  messages) for the languages they declare; their scores are combined with the lexicon hits.
Staff confirm or correct every suggestion: these are suggestions, never decisions.

Inference is pure Python; the same `features()` is imported by the training script, so train
and inference features are identical.
"""

from __future__ import annotations

import csv
import io
import math
import tomllib
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from typing import Any

from feedback.taxonomy import Taxonomy, taxonomy
from messages.geo import normalize_name

MAX_CHARS = 5000  # feedback is short; bounds the time a pasted document takes
SUGGEST_AT = 0.5  # a code is suggested from this confidence on
FIRST_HIT = 0.6  # confidence of a code with one lexicon term; each further term closes
HIT_DECAY = 0.6  # the remaining gap by 1 - HIT_DECAY
QUESTION_MARKS = frozenset("?？؟፧")  # Latin, full-width, Arabic, Ethiopic
OTHER_CAP = 0.9  # the most "other" is ever worth
TIE_ORDER = {"rumour": 5, "complaint": 4, "request": 3, "appreciation": 2, "question": 1}
SUBSTRING_LANGUAGES = frozenset({"my"})  # written without spaces between words
ENGLISH = "en"

# A lexicon code: (kind, key), e.g. ("cluster", "wash"), ("sector", "2"), ("urgent", "terms").
Code = tuple[str, str]


# --- Suggestion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    language: str | None  # what the caller passed (or detected)
    type: str  # one IFRC type key
    type_confidence: float
    mcof_sectors: dict[int, float]  # sector -> confidence, only those suggested
    clusters: dict[str, float]  # cluster -> confidence, only those suggested
    urgent: bool
    urgent_confidence: float
    sensitive: bool
    sensitive_categories: tuple[str, ...]  # sorted
    confidence: float  # overall, 0..1

    def to_json(self) -> dict[str, object]:
        """The `crisis-comms classify` shape."""
        return {
            "language": self.language,
            "type": self.type,
            "mcof_sectors": sorted(self.mcof_sectors),
            "clusters": sorted(self.clusters),
            "urgent": self.urgent,
            "sensitive": self.sensitive,
            "confidence": self.confidence,
        }

    def to_record(self) -> dict[str, object]:
        """Everything, JSON-safe (sector keys become strings)."""
        return {
            "language": self.language,
            "type": self.type,
            "type_confidence": self.type_confidence,
            "mcof_sectors": {str(k): v for k, v in sorted(self.mcof_sectors.items())},
            "clusters": dict(sorted(self.clusters.items())),
            "urgent": self.urgent,
            "urgent_confidence": self.urgent_confidence,
            "sensitive": self.sensitive,
            "sensitive_categories": list(self.sensitive_categories),
            "confidence": self.confidence,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> Suggestion:
        language = record.get("language")
        sectors = _float_map(record.get("mcof_sectors"))
        categories = record.get("sensitive_categories") or ()
        return cls(
            language=str(language) if language is not None else None,
            type=str(record["type"]),
            type_confidence=_float(record.get("type_confidence")),
            mcof_sectors={int(k): v for k, v in sectors.items()},
            clusters=_float_map(record.get("clusters")),
            urgent=bool(record.get("urgent")),
            urgent_confidence=_float(record.get("urgent_confidence")),
            sensitive=bool(record.get("sensitive")),
            sensitive_categories=tuple(sorted(str(c) for c in _iterable(categories))),
            confidence=_float(record.get("confidence")),
        )


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float | str) else 0.0


def _iterable(value: object) -> Iterable[object]:
    return value if isinstance(value, list | tuple) else ()


def _float_map(value: object) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {str(k): _float(v) for k, v in value.items()}
    return {str(k): 1.0 for k in _iterable(value)}  # the to_json list shape


# --- Text -------------------------------------------------------------------------------------


def clean(text: str) -> str:
    """Bounded, valid text: lone surrogates (broken emoji) replaced, length capped."""
    return text[:MAX_CHARS].encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def tokens(text: str) -> list[str]:
    return normalize_name(clean(text)).split()


def dominant_script(text: str) -> str | None:
    """The Unicode script (first word of the character name) of most letters in `text`."""
    counts = Counter(
        unicodedata.name(ch, "?").split(" ")[0] for ch in text if unicodedata.category(ch)[0] == "L"
    )
    return counts.most_common(1)[0][0] if counts else None


# --- Lexicons ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    code: Code
    words: tuple[str, ...]
    prefix: tuple[bool, ...]  # words[i] matches any word starting with it

    def matches_at(self, words: list[str], start: int) -> bool:
        if start + len(self.words) > len(words):
            return False
        return all(
            words[start + i].startswith(w) if p else words[start + i] == w
            for i, (w, p) in enumerate(zip(self.words, self.prefix, strict=True))
        )


@dataclass(frozen=True)
class Lexicon:
    """One language's terms, indexed by their first word for matching in one pass."""

    language: str
    exact: Mapping[str, tuple[Term, ...]]  # first word -> terms
    prefixes: Mapping[str, tuple[Term, ...]]  # first-word prefix -> terms
    substrings: tuple[tuple[str, Code], ...] = ()  # for languages written without spaces
    max_prefix: int = 0

    def hits(self, words: list[str], joined: str) -> set[tuple[Code, tuple[str, ...]]]:
        """The distinct (code, term) pairs found in the normalised words."""
        found: set[tuple[Code, tuple[str, ...]]] = set()
        for term, code in self.substrings:
            if term in joined:
                found.add((code, (term,)))
        for start, word in enumerate(words):
            candidates = list(self.exact.get(word, ()))
            for size in range(1, min(len(word), self.max_prefix) + 1):
                candidates.extend(self.prefixes.get(word[:size], ()))
            found.update((t.code, t.words) for t in candidates if t.matches_at(words, start))
        return found


def compile_lexicon(language: str, data: Mapping[str, Any]) -> Lexicon:
    """A lexicon from its TOML table (see feedback/data/lexicons/ for the format)."""
    terms = [(code, raw) for code, raw in _lexicon_entries(data)]
    if language.split("-")[0] in SUBSTRING_LANGUAGES:
        substrings = {
            ("".join(normalize_name(raw.replace("*", "")).split()), code) for code, raw in terms
        }
        return Lexicon(language, {}, {}, tuple(sorted(s for s in substrings if s[0])))
    exact: dict[str, list[Term]] = {}
    prefixes: dict[str, list[Term]] = {}
    for code, raw in terms:
        term = parse_term(code, raw)
        if term is None:
            continue
        index = prefixes if term.prefix[0] else exact
        index.setdefault(term.words[0], []).append(term)
    return Lexicon(
        language,
        {k: tuple(v) for k, v in exact.items()},
        {k: tuple(v) for k, v in prefixes.items()},
        max_prefix=max((len(k) for k in prefixes), default=0),
    )


def parse_term(code: Code, raw: str) -> Term | None:
    """A term's normalised words; a trailing `*` on a word makes that word a prefix."""
    words: list[str] = []
    prefix: list[bool] = []
    for chunk in raw.split():
        parts = normalize_name(chunk.rstrip("*")).split()
        words.extend(parts)
        prefix.extend([False] * (len(parts) - 1) + [chunk.endswith("*")] if parts else [])
    return Term(code, tuple(words), tuple(prefix)) if words else None


def _lexicon_entries(data: Mapping[str, Any]) -> Iterable[tuple[Code, str]]:
    for kind in ("type", "cluster", "sector", "sensitive"):
        for key, raw_terms in data.get(kind, {}).items():
            for raw in raw_terms:
                yield (kind, str(key)), str(raw)
    for raw in data.get("urgent", {}).get("terms", ()):
        yield ("urgent", "terms"), str(raw)


def _lexicon_dir() -> Traversable:
    return resources.files("feedback").joinpath("data/lexicons")


@cache
def load_lexicons() -> dict[str, Lexicon]:
    """Every shipped lexicon by language code; a language without a file simply has none."""
    folder = _lexicon_dir()
    if not folder.is_dir():
        return {}
    lexicons: dict[str, Lexicon] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text("utf-8"))
            code = str(data.get("language") or entry.name.removesuffix(".toml"))
            lexicons[code] = compile_lexicon(code, data)
    return lexicons


@cache
def _scripts() -> dict[str, str]:
    """Base language code -> Unicode script, from messages/data/scripts.toml."""
    raw = resources.files("messages").joinpath("data/scripts.toml").read_text("utf-8")
    table = tomllib.loads(raw)["scripts"]
    return {lang: script for script, langs in table.items() for lang in langs}


def _base(code: str) -> str:
    return code.split("-")[0].lower()


# --- Learned models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureConfig:
    """What features() extracts; stored with each model so train and inference agree."""

    word_ngrams: int = 2  # word n-grams up to this length
    char_min: int = 2  # character n-grams inside words (with < > word boundaries)
    char_max: int = 5
    max_words: int = 300  # bounds the work on a long text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureConfig:
        return cls(**{k: int(v) for k, v in data.items()})


def features(text: str, config: FeatureConfig | None = None) -> dict[str, float]:
    """Word n-grams and within-word character n-grams, each group scaled to unit length.

    Presence, not counts (short messages; repeated words add little), and scaling per group so
    that long and short texts score on the same scale without a vocabulary-wide statistic.
    """
    config = config or FeatureConfig()
    words = ["0" if w.isdigit() else w for w in tokens(text)][: config.max_words]
    groups: list[set[str]] = [set(), set()]
    for n in range(1, config.word_ngrams + 1):
        groups[0].update("w:" + " ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    for word in words:
        padded = f"<{word}>"
        for n in range(config.char_min, config.char_max + 1):
            groups[1].update("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    out: dict[str, float] = {}
    for group in groups:
        if group:
            value = 1.0 / math.sqrt(len(group))
            out.update(dict.fromkeys(group, value))
    return out


@dataclass(frozen=True)
class TagMapping:
    """The codes a learned tag suggests; their lexicon hits are the tag's lexicon evidence."""

    clusters: tuple[str, ...] = ()
    sectors: tuple[int, ...] = ()
    types: tuple[str, ...] = ()
    # The model may overrule a lexicon hit for these codes (its score already weighs the
    # hit); otherwise a lexicon hit stands and the model only adds what the lexicons missed.
    veto: bool = False
    # False when the model did no better than the lexicons alone on its training data.
    use_model: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TagMapping:
        return cls(
            tuple(data.get("clusters", ())),
            tuple(int(s) for s in data.get("sectors", ())),
            tuple(data.get("types", ())),
            bool(data.get("veto", False)),
            bool(data.get("use_model", True)),
        )

    def evidence(self, lexical: Mapping[Code, float], codes: Taxonomy) -> float:
        """The strongest lexicon confidence among the codes (and their protection areas)."""
        areas = [k for k, c in codes.cluster_details.items() if c.area_of in self.clusters]
        keys = [
            *(("cluster", c) for c in (*self.clusters, *areas)),
            *(("sector", str(s)) for s in self.sectors),
            *(("type", t) for t in self.types),
        ]
        return max((lexical.get(key, 0.0) for key in keys), default=0.0)


@dataclass(frozen=True)
class LinearModel:
    """Logistic regression per tag; score = intercept + w·x + lexicon weight x lexicon hit.

    A tag is suggested when its score reaches the tag's threshold (chosen by cross-validation
    on the training data); confidence = sigmoid(score - threshold), so 0.5 at the threshold.
    """

    name: str
    languages: frozenset[str]
    tags: tuple[str, ...]
    mappings: Mapping[str, TagMapping]
    intercepts: tuple[float, ...]
    thresholds: tuple[float, ...]
    lexicon_weights: tuple[float, ...]
    # Weights as one flat table, row r = the tags' weights of the feature whose index is r:
    # a tuple of (tag, weight) pairs per feature took five times the memory.
    index: Mapping[str, int]  # feature -> row
    table: array[float]  # len(index) * len(tags) weights, row by row
    config: FeatureConfig = field(default_factory=FeatureConfig)

    def serves(self, language: str | None) -> bool:
        return language is not None and (
            language in self.languages or _base(language) in self.languages
        )

    def scores(self, text: str, lexicon_hits: Mapping[str, float]) -> dict[str, float]:
        """Tag -> confidence (0.5 at the tag's threshold)."""
        totals = list(self.intercepts)
        width = len(self.tags)
        for feature, value in features(text, self.config).items():
            row = self.index.get(feature)
            if row is not None:
                start = row * width
                for column, weight in enumerate(self.table[start : start + width]):
                    totals[column] += weight * value
        out: dict[str, float] = {}
        for index, tag in enumerate(self.tags):
            lexical = self.lexicon_weights[index] * lexicon_hits.get(tag, 0.0)
            out[tag] = _sigmoid(totals[index] + lexical - self.thresholds[index])
        return out


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def load_model(meta_text: str, weights_text: str) -> LinearModel:
    meta = tomllib.loads(meta_text)
    tags = tuple(meta["tags"])
    index = {tag: i for i, tag in enumerate(tags)}
    rows: dict[str, int] = {}
    table = array("d")
    lines = csv.reader(line for line in io.StringIO(weights_text) if not line.startswith("#"))
    for line in lines:
        if line and line != ["tag", "feature", "weight"]:
            row = rows.setdefault(line[1], len(rows))
            if row * len(tags) == len(table):
                table.extend([0.0] * len(tags))
            table[row * len(tags) + index[line[0]]] = float(line[2])
    return LinearModel(
        name=str(meta["name"]),
        languages=frozenset(meta["languages"]),
        tags=tags,
        mappings={tag: TagMapping.from_dict(m) for tag, m in meta["mapping"].items()},
        intercepts=tuple(float(meta["intercept"][t]) for t in tags),
        thresholds=tuple(float(meta["threshold"][t]) for t in tags),
        lexicon_weights=tuple(float(meta["lexicon_weight"][t]) for t in tags),
        index=rows,
        table=table,
        config=FeatureConfig.from_dict(meta.get("features", {})),
    )


@cache
def load_models() -> tuple[LinearModel, ...]:
    """The shipped models (data/model/<name>.toml + <name>.csv); none if the folder is empty."""
    folder = resources.files("feedback").joinpath("data/model")
    if not folder.is_dir():
        return ()
    models = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            weights = folder.joinpath(entry.name.removesuffix(".toml") + ".csv")
            models.append(load_model(entry.read_text("utf-8"), weights.read_text("utf-8")))
    return tuple(models)


# --- Coder ------------------------------------------------------------------------------------


def hit_confidence(hits: int) -> float:
    """One distinct term: FIRST_HIT; each further term closes part of the remaining gap."""
    return 0.0 if hits <= 0 else 1.0 - (1.0 - FIRST_HIT) * HIT_DECAY ** (hits - 1)


@dataclass
class _Scores:
    """Confidences per code while a suggestion is assembled (the highest signal wins)."""

    types: dict[str, float] = field(default_factory=dict)
    sectors: dict[int, float] = field(default_factory=dict)
    clusters: dict[str, float] = field(default_factory=dict)
    sensitive: dict[str, float] = field(default_factory=dict)
    urgent: float = 0.0

    def add(self, kind: str, key: str, confidence: float) -> None:
        if kind == "urgent":
            self.urgent = max(self.urgent, confidence)
        elif kind == "sector" and key.isdigit():
            self.sectors[int(key)] = max(self.sectors.get(int(key), 0.0), confidence)
        elif kind in ("type", "cluster", "sensitive"):
            table = {"type": self.types, "cluster": self.clusters, "sensitive": self.sensitive}
            table[kind][key] = max(table[kind].get(key, 0.0), confidence)


class Coder:
    def __init__(
        self,
        lexicons: Mapping[str, Lexicon],
        models: Iterable[LinearModel] = (),
        codes: Taxonomy | None = None,
    ) -> None:
        self.lexicons = dict(lexicons)
        self.models = tuple(models)
        self.taxonomy = codes or taxonomy()
        self._scripts = {code: _scripts().get(_base(code)) for code in self.lexicons}

    def lexicons_for(self, text: str, language: str | None) -> list[Lexicon]:
        """The language's lexicon and English; all lexicons of the text's script if unknown."""
        codes: list[str] = []
        if language is not None:
            base = _base(language)
            codes.extend(c for c in self.lexicons if c == language)
            codes.extend(c for c in self.lexicons if c != language and _base(c) == base)
        else:
            script = dominant_script(text)
            codes.extend(c for c, s in self._scripts.items() if s is not None and s == script)
        codes.append(ENGLISH)
        return [self.lexicons[c] for c in dict.fromkeys(codes) if c in self.lexicons]

    def lexicon_scores(self, text: str, language: str | None) -> dict[Code, float]:
        text = clean(text)
        words = normalize_name(text).split()
        joined = "".join(words)
        terms: dict[Code, set[tuple[str, ...]]] = {}
        for lexicon in self.lexicons_for(text, language):
            for code, term in lexicon.hits(words, joined):
                terms.setdefault(code, set()).add(term)
        if any(ch in QUESTION_MARKS for ch in text):
            terms.setdefault(("type", "question"), set()).add(("?",))
        return {code: hit_confidence(len(found)) for code, found in terms.items()}

    def suggest(self, text: str, language: str | None = None) -> Suggestion:
        lexical = self.lexicon_scores(text, language)
        scores = _Scores()
        for (kind, key), confidence in lexical.items():
            scores.add(kind, key, confidence)
        for model in self.models:
            if model.serves(language):
                self._add_model(model, text, lexical, scores)
        self._add_implied(scores)
        return self._assemble(language, scores)

    def _add_model(
        self, model: LinearModel, text: str, lexical: Mapping[Code, float], scores: _Scores
    ) -> None:
        tag_hits = {tag: m.evidence(lexical, self.taxonomy) for tag, m in model.mappings.items()}
        for tag, confidence in model.scores(text, tag_hits).items():
            mapping = model.mappings[tag]
            if not mapping.use_model:
                continue
            if mapping.veto:
                for cluster in mapping.clusters:
                    scores.clusters[cluster] = confidence
                for sector in mapping.sectors:
                    scores.sectors[sector] = confidence
            for cluster in mapping.clusters:
                scores.add("cluster", cluster, confidence)
            for sector in mapping.sectors:
                scores.add("sector", str(sector), confidence)
            for kind in mapping.types:
                scores.add("type", kind, confidence)

    def _add_implied(self, scores: _Scores) -> None:
        """Sensitive categories imply clusters and sectors; clusters imply sectors."""
        for key, confidence in list(scores.sensitive.items()):
            category = self.taxonomy.sensitive_categories.get(key)
            if category is None or confidence < SUGGEST_AT:
                continue
            for cluster in category.clusters:
                scores.add("cluster", cluster, confidence)
            for sector in category.sectors:
                scores.add("sector", str(sector), confidence)
        for key, confidence in list(scores.clusters.items()):
            details = self.taxonomy.cluster_details.get(key)
            for sector in details.sectors if details else ():
                scores.add("sector", str(sector), confidence)

    def _assemble(self, language: str | None, scores: _Scores) -> Suggestion:
        known = self.taxonomy
        types = {k: v for k, v in scores.types.items() if k in known.types and k != "other"}
        # On a tie the more specific type wins: a "?" cue is weak beside a rumour or complaint.
        best = max(types, key=lambda k: (types[k], TIE_ORDER.get(k, 0)), default=None)
        if best is not None and types[best] >= SUGGEST_AT:
            kind, type_confidence = best, types[best]
        else:
            # Lexicons are incomplete: no hit never makes "other" certain.
            kind, type_confidence = "other", min(OTHER_CAP, 1.0 - max(types.values(), default=0.0))
        sectors = {k: v for k, v in scores.sectors.items() if k in known.sectors}
        clusters = {k: v for k, v in scores.clusters.items() if k in known.clusters}
        sectors = {k: _round(v) for k, v in sorted(sectors.items()) if v >= SUGGEST_AT}
        clusters = {k: _round(v) for k, v in sorted(clusters.items()) if v >= SUGGEST_AT}
        categories = tuple(
            sorted(
                k
                for k, v in scores.sensitive.items()
                if v >= SUGGEST_AT and k in known.sensitive_categories
            )
        )
        sensitive_confidence = max((scores.sensitive[k] for k in categories), default=0.0)
        urgent_confidence = max(scores.urgent, sensitive_confidence)
        weakest = min([type_confidence, *sectors.values(), *clusters.values()])
        return Suggestion(
            language=language,
            type=kind,
            type_confidence=_round(type_confidence),
            mcof_sectors=sectors,
            clusters=clusters,
            urgent=urgent_confidence >= SUGGEST_AT,
            urgent_confidence=_round(urgent_confidence),
            sensitive=bool(categories),
            sensitive_categories=categories,
            confidence=_round(weakest),
        )


def _round(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 4)


@cache
def default_coder() -> Coder:
    """The shipped coder: taxonomy, every lexicon and the learned models, loaded once."""
    return Coder(load_lexicons(), load_models(), taxonomy())
