"""The feedback coder's engine: taxonomy, Suggestion shapes, lexicon matching, learned models.

Lexicon semantics are tested on small lexicons written here, so that these tests do not
depend on the shipped word lists (tests/test_coding_cases.py covers those).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from feedback.coding import (
    Coder,
    Lexicon,
    Suggestion,
    compile_lexicon,
    default_coder,
    features,
    load_models,
)
from feedback.taxonomy import taxonomy
from messages.languages import language_codes

CLUSTERS = {
    "cccm",
    "early_recovery",
    "education",
    "emergency_telecommunications",
    "food_security",
    "health",
    "logistics",
    "nutrition",
    "protection",
    "shelter",
    "wash",
    "child_protection",
    "gbv",
    "hlp",
}
ODD_INPUTS = [
    "",
    "   ",
    "😀🙏🏽💧",
    "\x00\x01\x07\x1b[31m\u200b\u202e",
    "\ud83d broken surrogate",
    "?" * 50,
    "water " * 2000,  # 12,000 characters
    "a" * 10_000,
    "ا" * 10_000,
]


def _lexicon(language: str, **tables: Any) -> Lexicon:
    return compile_lexicon(language, {"language": language, **tables})


def _coder(*lexicons: Lexicon) -> Coder:
    return Coder({lexicon.language: lexicon for lexicon in lexicons})


def _suggestion() -> Suggestion:
    return Suggestion(
        language="ht",
        type="request",
        type_confidence=0.76,
        mcof_sectors={10: 0.6, 2: 0.81},
        clusters={"wash": 0.9, "gbv": 0.6},
        urgent=True,
        urgent_confidence=0.6,
        sensitive=True,
        sensitive_categories=("gbv",),
        confidence=0.6,
    )


# --- Taxonomy ---------------------------------------------------------------------------------


def test_taxonomy_has_the_fifteen_mcof_sectors_citing_paragraph_10() -> None:
    codes = taxonomy()
    assert list(codes.sectors) == list(range(1, 16))
    assert codes.sectors[15] == "Humanitarian Communications"
    for sector in codes.sector_details.values():
        assert "MC/2355 para 10" in sector.source
        assert sector.name and sector.definition


def test_taxonomy_has_every_cluster_and_type() -> None:
    codes = taxonomy()
    assert set(codes.clusters) == CLUSTERS
    assert set(codes.types) == {
        "question",
        "request",
        "complaint",
        "rumour",
        "appreciation",
        "other",
    }
    for cluster in codes.cluster_details.values():
        assert set(cluster.sectors) <= set(codes.sectors)
        assert cluster.area_of in (None, "protection")


def test_sensitive_categories_imply_known_codes() -> None:
    codes = taxonomy()
    assert set(codes.sensitive_categories) == {
        "sexual_exploitation_abuse",
        "gbv",
        "child_alone",
        "trafficking",
        "self_harm",
        "threat_to_life",
    }
    assert codes.sensitive_categories["self_harm"].sectors == (4, 5)
    assert set(codes.sensitive_categories["child_alone"].clusters) == {
        "child_protection",
        "protection",
    }
    for category in codes.sensitive_categories.values():
        assert set(category.clusters) <= CLUSTERS
        assert set(category.sectors) <= set(codes.sectors)


# --- Suggestion shapes ------------------------------------------------------------------------


def test_to_json_has_exactly_the_classify_shape() -> None:
    shape = _suggestion().to_json()
    assert shape == {
        "language": "ht",
        "type": "request",
        "mcof_sectors": [2, 10],
        "clusters": ["gbv", "wash"],
        "urgent": True,
        "sensitive": True,
        "confidence": 0.6,
    }
    assert json.loads(json.dumps(shape)) == shape


def test_record_round_trips_through_json() -> None:
    original = _suggestion()
    record = json.loads(json.dumps(original.to_record()))
    assert Suggestion.from_record(record) == original
    empty = default_coder().suggest("")
    assert Suggestion.from_record(empty.to_record()) == empty


# --- Lexicon matching -------------------------------------------------------------------------


def test_terms_match_whole_words_after_normalisation() -> None:
    coder = _coder(
        _lexicon("fr", cluster={"wash": ["eau potable", "toilette*"], "health": ["médecin"]})
    )
    assert coder.suggest("Pas d'EAU  POTABLE!", "fr").clusters.keys() == {"wash"}
    assert coder.suggest("les toilettes sont sales", "fr").clusters.keys() == {"wash"}
    assert coder.suggest("un medecin svp", "fr").clusters.keys() == {"health"}  # accent folded
    assert not coder.suggest("eaux potables", "fr").clusters  # no `*`: whole words only
    assert not coder.suggest("potable eau", "fr").clusters  # words in order


def test_burmese_terms_match_inside_unspaced_text() -> None:
    coder = _coder(_lexicon("my", cluster={"wash": ["ရေ"]}))
    assert "wash" in coder.suggest("သောက်ရေမရှိဘူး", "my").clusters


def test_more_distinct_terms_give_more_confidence() -> None:
    coder = _coder(_lexicon("en", cluster={"wash": ["water", "latrine", "soap"]}))
    one = coder.suggest("water water water", "en").clusters["wash"]
    two = coder.suggest("water and a latrine", "en").clusters["wash"]
    three = coder.suggest("water, a latrine and soap", "en").clusters["wash"]
    assert 0.5 <= one < two < three <= 1.0


def test_a_question_mark_is_a_question_cue() -> None:
    coder = _coder()
    assert coder.suggest("ምን ጊዜ ነው፧").type == "question"
    assert coder.suggest("kiedy？").type == "question"
    assert coder.suggest("kiedy").type == "other"


def test_a_message_mixing_two_languages_gets_codes_from_both() -> None:
    coder = _coder(
        _lexicon("ht", cluster={"wash": ["dlo"]}),
        _lexicon("en", cluster={"health": ["doctor"]}),
        _lexicon("fr", cluster={"shelter": ["tente"]}),
    )
    got = coder.suggest("Nou bezwen dlo. Also my child needs a doctor", "ht")
    assert {"wash", "health"} <= set(got.clusters)
    assert "shelter" not in coder.suggest("dlo tente", "ht").clusters  # French not consulted


def test_unknown_language_uses_every_lexicon_of_the_script() -> None:
    coder = _coder(
        _lexicon("uk", cluster={"wash": ["вод*"]}),
        _lexicon("ru", cluster={"food_security": ["еда"]}),
        _lexicon("ar", cluster={"health": ["طبيب"]}),
    )
    got = coder.suggest("нет воды и еда кончилась طبيب")
    assert {"wash", "food_security"} <= set(got.clusters)
    assert "health" not in got.clusters  # Arabic script is the minority here


def test_sensitive_implies_urgent_and_its_codes() -> None:
    coder = _coder(_lexicon("en", sensitive={"child_alone": ["lost my parents"]}))
    got = coder.suggest("I am 12 and I lost my parents", "en")
    assert got.sensitive and got.urgent
    assert got.sensitive_categories == ("child_alone",)
    assert {"child_protection", "protection"} <= set(got.clusters)
    assert 10 in got.mcof_sectors
    assert got.urgent_confidence >= 0.5


def test_clusters_imply_their_sectors() -> None:
    coder = _coder(_lexicon("en", cluster={"shelter": ["tent"]}))
    assert 2 in coder.suggest("our tent is torn", "en").mcof_sectors


def test_missing_lexicons_are_tolerated() -> None:
    got = Coder({}).suggest("Nou bezwen dlo", "ht")
    assert got.type == "other" and not got.clusters


# --- Learned models ---------------------------------------------------------------------------


def test_learned_models_load_and_declare_their_languages() -> None:
    models = {model.name: model for model in load_models()}
    assert set(models) == {"english", "original"}
    assert models["english"].serves("en") and not models["english"].serves("ht")
    assert models["original"].serves("ht")
    for model in models.values():
        assert len(model.index) > 1000
        assert set(model.tags) == set(model.mappings)


@pytest.mark.parametrize(
    ("text", "language", "clusters"),
    [
        ("We need water and food in Carrefour", "en", {"wash", "food_security"}),
        ("Our house collapsed, we need tents", "en", {"shelter"}),
        ("Nou bezwen dlo ak manje", "ht", {"wash", "food_security"}),
        ("Nou pa gen kay, nou bezwen tant", "ht", {"shelter"}),
    ],
)
def test_learned_models_alone_code_obvious_needs(
    text: str, language: str, clusters: set[str]
) -> None:
    got = Coder({}, load_models()).suggest(text, language)  # no lexicon at all
    assert clusters <= set(got.clusters)


def test_learned_models_do_not_code_an_unrelated_message() -> None:
    got = Coder({}, load_models()).suggest("Thank you, the weather is nice today", "en")
    assert not got.clusters and not got.mcof_sectors


def test_features_are_scaled_per_group() -> None:
    found = features("Water, water!")
    assert found["w:water"] == found["w:water water"]
    words = [k for k in found if k.startswith("w:")]
    assert sum(found[k] ** 2 for k in words) == pytest.approx(1.0)
    assert "c:<wa" in found and "c:er>" in found
    assert features("") == {}


# --- Robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ODD_INPUTS, ids=range(len(ODD_INPUTS)))
@pytest.mark.parametrize("language", [None, "xx", *language_codes()])
def test_odd_input_never_crashes(text: str, language: str | None) -> None:
    got = default_coder().suggest(text, language)
    codes = taxonomy()
    assert got.type in codes.types
    assert set(got.mcof_sectors) <= set(codes.sectors)
    assert set(got.clusters) <= set(codes.clusters)
    confidences = [got.confidence, got.type_confidence, got.urgent_confidence]
    assert all(0.0 <= c <= 1.0 for c in [*confidences, *got.clusters.values()])
    json.dumps(got.to_record())


def test_empty_and_emoji_only_are_other() -> None:
    for text in ("", "😀🙏🏽", "\x00\x07"):
        got = default_coder().suggest(text)
        assert got.type == "other" and not got.clusters and not got.sensitive


def test_output_is_deterministic() -> None:
    text = "Nou bezwen dlo ak manje, timoun yo malad. Where is the clinic?"
    first = default_coder().suggest(text, "ht")
    fresh = Coder(default_coder().lexicons, load_models())
    assert all(fresh.suggest(text, "ht") == first for _ in range(3))


@pytest.mark.parametrize(
    "text", ["People say the camp will close?", "They say the water is poisoned?"]
)
def test_a_rumour_asked_as_a_question_is_a_rumour(text: str) -> None:
    """A "?" cue and a rumour term score the same: the more specific type wins the tie."""
    suggestion = default_coder().suggest(text, "en")
    assert suggestion.type == "rumour"
