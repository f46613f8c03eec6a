"""Benchmark language detection: langdetect alone against messages.detection, with and without
a client hint, on whole sentences and on their first three words.

    python bench/langid.py /work/shared/data/langid/dev.tsv [--limit-per-lang N]

The TSV has columns lang, source, text (a header row is optional). Gold `prs` (Dari) counts
`fa` as correct. "Unknown" counts as wrong for accuracy; coverage is the share answered.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from messages.detection import detect, preload

# Every language the bot speaks.
ENABLED: tuple[str, ...] = ("en", "fr", "es", "ar", "fa", "fa-AF", "ps", "ur", "bn", "uk", "ru")
ENABLED += ("tr", "sw", "so", "am", "ti", "ha", "ht", "my")
HINT_RIGHT = 0.8
BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

Detector = Callable[[str, str], tuple[str | None, float]]  # (text, gold) -> (answer, conf)


@dataclass(frozen=True)
class Sample:
    lang: str
    text: str

    @property
    def first_words(self) -> str:
        return " ".join(self.text.split()[:3])


@dataclass
class Tally:
    right: int = 0
    answered: int = 0
    total: int = 0

    def add(self, correct: bool, answered: bool) -> None:
        self.right += correct
        self.answered += answered
        self.total += 1


@dataclass
class Result:
    full: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    short: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    answers: list[tuple[float, bool]] = field(default_factory=list)  # for calibration
    seconds: float = 0.0
    calls: int = 0
    load_mb: float = 0.0
    load_seconds: float = 0.0


def read_samples(path: Path, limit: int | None) -> list[Sample]:
    samples: list[Sample] = []
    per_lang: dict[str, int] = defaultdict(int)
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) < 3 or row[0] == "lang":
                continue
            if limit is None or per_lang[row[0]] < limit:
                per_lang[row[0]] += 1
                samples.append(Sample(row[0], row[2]))
    return samples


def is_correct(answer: str | None, gold: str) -> bool:
    return answer == gold or (gold == "prs" and answer == "fa")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def langdetect_detector() -> Detector:
    from langdetect import DetectorFactory, detect_langs
    from langdetect.detector_factory import init_factory
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    init_factory()
    allowed = {"fa" if code == "fa-AF" else code for code in ENABLED}

    def run(text: str, gold: str) -> tuple[str | None, float]:
        try:
            ranked = detect_langs(text)
        except LangDetectException:
            return None, 0.0
        best = next((r for r in ranked if r.lang in allowed), None)
        return (best.lang, float(best.prob)) if best else (None, 0.0)

    return run


def ours_detector(with_hint: bool) -> Detector:
    rng = random.Random(0)

    def hint_for(gold: str) -> str:
        code = "fa-AF" if gold == "prs" else gold
        if rng.random() < HINT_RIGHT:
            return code
        same = {"fa", "fa-AF"} if code in ("fa", "fa-AF") else {code}
        return rng.choice([c for c in ENABLED if c not in same])

    def run(text: str, gold: str) -> tuple[str | None, float]:
        found = detect(text, ENABLED, hint_for(gold) if with_hint else None)
        return found.language, found.confidence

    return run


def preloaded_ours() -> Detector:
    preload()  # so that the load time and memory are measured here, not in the first call
    return ours_detector(with_hint=False)


def evaluate(detector: Detector, samples: Iterable[Sample], result: Result) -> None:
    start = time.perf_counter()
    for sample in samples:
        for tallies, text in ((result.full, sample.text), (result.short, sample.first_words)):
            answer, confidence = detector(text, sample.lang)
            correct = is_correct(answer, sample.lang)
            tallies[sample.lang].add(correct, answer is not None)
            if answer is not None:
                result.answers.append((confidence, correct))
            result.calls += 1
    result.seconds += time.perf_counter() - start


def loaded(factory: Callable[[], Detector]) -> tuple[Detector, Result]:
    before, start = rss_mb(), time.perf_counter()
    detector = factory()
    result = Result(load_seconds=time.perf_counter() - start)
    result.load_mb = rss_mb() - before
    return detector, result


def pct(tally: Tally, share: Callable[[Tally], int]) -> float:
    return 100 * share(tally) / tally.total if tally.total else 0.0


def print_table(names: Sequence[str], results: Sequence[Result], langs: Sequence[str]) -> None:
    head = "".join(f" | {name:^29}" for name in names)
    print(f"{'lang':<6}{head}")
    print(f"{'':<6}" + " | full%  3w%  cov%  cov3w%  " * len(names))
    rows = [(lang, [(r.full[lang], r.short[lang]) for r in results]) for lang in langs]
    for lang, cells in rows:
        print(f"{lang:<6}" + "".join(_cell(full, short) for full, short in cells))
    macro = [
        [
            sum(pct(r.full[lang], right) for lang in langs) / len(langs),
            sum(pct(r.short[lang], right) for lang in langs) / len(langs),
            sum(pct(r.full[lang], answered) for lang in langs) / len(langs),
            sum(pct(r.short[lang], answered) for lang in langs) / len(langs),
        ]
        for r in results
    ]
    print(f"{'MACRO':<6}" + "".join(" | " + _figures(*m) for m in macro))


def right(tally: Tally) -> int:
    return tally.right


def answered(tally: Tally) -> int:
    return tally.answered


def _cell(full: Tally, short: Tally) -> str:
    return " | " + _figures(
        pct(full, right), pct(short, right), pct(full, answered), pct(short, answered)
    )


def _figures(a: float, b: float, c: float, d: float) -> str:
    return f"{a:5.1f} {b:5.1f} {c:5.1f} {d:6.1f}  "


def print_calibration(name: str, answers: Sequence[tuple[float, bool]]) -> None:
    print(f"\nCalibration, {name} (answered texts, full and 3 words):")
    print("  confidence      n   mean conf  accuracy")
    for low, high in itertools.pairwise(BINS):
        inside = [(conf, ok) for conf, ok in answers if low <= conf < high or conf == high == 1]
        if inside:
            mean = sum(conf for conf, _ in inside) / len(inside)
            accuracy = sum(ok for _, ok in inside) / len(inside)
            print(f"  [{low:.2f},{high:.2f}) {len(inside):6d}   {mean:8.3f}  {accuracy:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tsv", type=Path)
    parser.add_argument("--limit-per-lang", type=int, default=None)
    args = parser.parse_args()
    samples = read_samples(args.tsv, args.limit_per_lang)
    langs = sorted({s.lang for s in samples})

    systems: list[tuple[str, Detector, Result]] = []
    for name, factory in (
        ("ours", preloaded_ours),
        ("ours + 80% hint", lambda: ours_detector(with_hint=True)),
        ("langdetect", langdetect_detector),
    ):
        detector, result = loaded(factory)
        evaluate(detector, samples, result)
        systems.append((name, detector, result))

    print(f"{len(samples)} sentences, {len(langs)} languages; enabled: {' '.join(ENABLED)}\n")
    print_table([n for n, _, _ in systems], [r for _, _, r in systems], langs)
    print("\nsystem               texts/s   load s   RSS after load (MB, delta)")
    for name, _, r in systems:
        print(f"{name:<18} {r.calls / r.seconds:9.0f}  {r.load_seconds:7.2f}   {r.load_mb:8.1f}")
    for name, _, r in systems[:2]:
        print_calibration(name, r.answers)


if __name__ == "__main__":
    main()
