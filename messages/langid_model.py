"""py3langid's language model, for a few languages, in a fraction of its memory.

py3langid (langid.py) finds the byte n-grams of a text by walking its UTF-8 bytes through an
Aho-Corasick automaton, then sums naive-Bayes weights of those n-grams per language. The
library keeps the automaton as a full transition table (38,346 distinct rows of 256 next
states: 39 MB) and weights for 142 languages (28 MB). Every process of the bot holds one,
so here, from the very model file the library ships:

- only the languages asked for are kept (a naive-Bayes score of one language does not
  depend on the others, so their scores are unchanged);
- the automaton is kept as its trie (one edge per state, in a dict) and failure links: a
  missing edge means "follow the failure link and try again", which is how the table was
  built. At most the trie's depth (six) of extra steps per byte.

`tests/test_detection.py` checks that the scores are py3langid's own.
"""

from __future__ import annotations

import lzma
import shutil
import tempfile
import unicodedata
from array import array
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy
from py3langid.langid import MODEL_DIR, MODEL_FILE

BLOCK = 4096  # states expanded at once while loading: bounds the passing memory (~4 MB)


@dataclass(frozen=True)
class ByteNgramModel:
    languages: tuple[str, ...]
    weights: Any  # numpy (n-grams, languages): log P(n-gram | language), float16 as shipped
    priors: Any  # numpy (languages,): log P(language)
    edges: dict[int, int]  # state << 8 | byte -> next state, the trie's edges only
    failure: array[int]  # state -> the state of its longest proper suffix in the trie
    output: memoryview  # state -> the n-gram it completes, or -1

    def scores(self, text: str) -> dict[str, float]:
        """Log-likelihood per language, unnormalised, as py3langid's `rank`; {} when the text
        has none of the model's n-grams (the library then scores every language alike)."""
        counts = self.ngram_counts(_encode(text))
        if not counts:
            return {}
        index = numpy.fromiter(counts.keys(), dtype=numpy.intp, count=len(counts))
        times = numpy.fromiter(counts.values(), dtype=numpy.float32, count=len(counts))
        totals = numpy.log1p(times) @ self.weights[index] + self.priors
        return dict(zip(self.languages, totals.tolist(), strict=True))

    def ngram_counts(self, data: bytes) -> Counter[int]:
        edges, failure, output = self.edges, self.failure, self.output
        state = 0
        found: list[int] = []
        for byte in data:
            while True:
                following = edges.get(state << 8 | byte)
                if following is not None:
                    state = following
                    break
                if state == 0:
                    break  # the root stays the root on a byte no n-gram starts with
                state = failure[state]
            ngram = output[state]
            if ngram >= 0:
                found.append(ngram)
        return Counter(found)


def _encode(text: str) -> bytes:
    """The bytes py3langid scores (its LanguageIdentifier._encode, for text)."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf-8", errors="surrogatepass")


def load(languages: Collection[str]) -> ByteNgramModel:
    """The shipped model (py3langid's data/model.npz.xz) for those of `languages` it has."""
    with tempfile.TemporaryFile() as npz:
        with lzma.open(MODEL_DIR / MODEL_FILE) as packed:
            shutil.copyfileobj(packed, npz, length=1 << 20)
        npz.seek(0)
        with numpy.load(npz, allow_pickle=False) as data:
            classes = data["classes"].tolist()
            keep = [i for i, code in enumerate(classes) if code in languages]
            weights = data["ptc"][:, keep].copy()  # a copy, so the full table is freed
            priors = data["pc"][keep].copy()
            output = numpy.ascontiguousarray(data["out_feat"], dtype=numpy.int32)
            edges, failure = _trie(data["nextmove"].reshape(-1, 256), data["nextmove_row"])
    return ByteNgramModel(
        languages=tuple(classes[i] for i in keep),
        weights=weights,
        priors=priors,
        edges=edges,
        failure=failure,
        output=memoryview(output.tobytes()).cast("i"),
    )


def _trie(rows: Any, row_of: Any) -> tuple[dict[int, int], array[int]]:
    """The trie edges and failure links of the automaton whose transition table is
    rows[row_of[state]][byte].

    Breadth first from the root: a transition to a state not yet reached is a trie edge
    (a failure transition never leads deeper than the state it leaves); the failure link of
    the child of s by byte b is where the failure state of s goes on b.
    """
    count = len(row_of)
    depth = numpy.full(count, -1, dtype=numpy.int64)
    depth[0] = 0
    parent = numpy.zeros(count, dtype=numpy.int64)
    via = numpy.zeros(count, dtype=numpy.int64)
    failure = numpy.zeros(count, dtype=numpy.int64)
    frontier = numpy.zeros(1, dtype=numpy.int64)
    level = reached_count = 0
    while len(frontier):
        reached = []
        for start in range(0, len(frontier), BLOCK):
            states = frontier[start : start + BLOCK]
            following = rows[row_of[states]]
            source, byte = numpy.nonzero(depth[following] < 0)
            children = following[source, byte]
            depth[children] = level + 1
            parent[children], via[children] = states[source], byte
            reached.append(children)
            reached_count += len(children)
        frontier = numpy.concatenate(reached)
        if level > 0 and len(frontier):  # children of the root fail to the root
            failure[frontier] = rows[row_of[failure[parent[frontier]]], via[frontier]]
        level += 1
    if (depth < 0).any() or reached_count != count - 1:
        raise ValueError("py3langid model: its automaton is not a trie with failure links")
    keys = (parent[1:] << 8 | via[1:]).tolist()
    edges = dict(zip(keys, range(1, count), strict=True))
    return edges, array("I", failure.tolist())
