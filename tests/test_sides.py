"""The side rules on their own: the pair label, what an entry of some sides holds, defaults."""

from __future__ import annotations

import pytest

from moee_pipeline.prompts import prompt_id
from moee_pipeline.sides import (
    SidePrompts,
    Sides,
    SidesError,
    held_sides,
    merge_sides,
    pair_label,
    parse_label,
    side_of,
    side_prompts,
    texts_of_sides,
)

QUERY: Sides = frozenset({"query"})
DOCUMENT: Sides = frozenset({"document"})


def test_a_pair_label_names_both_ids_and_reads_back() -> None:
    custom = prompt_id("Find: {text}")
    label = pair_label(custom, "none")
    assert label == f"query-{custom}+document-none"
    assert parse_label(label) == SidePrompts(custom, "none")
    assert pair_label("none", "none") == "none"  # one template: its id, as before
    for plain in ("none", "prompteol", "language_style", custom):
        assert parse_label(plain) is None


def test_an_entry_is_extended_to_more_sides_never_narrowed() -> None:
    assert held_sides({}) is None and held_sides(None) is None
    assert held_sides({"sides": ["document"]}) == DOCUMENT
    assert merge_sides(None, QUERY) is None  # an entry of every text serves either side
    assert merge_sides(DOCUMENT, None) is None
    assert merge_sides(DOCUMENT, DOCUMENT) == DOCUMENT
    assert merge_sides(DOCUMENT, QUERY) is None  # both sides: every text


def test_a_side_holds_the_texts_recorded_as_that_side() -> None:
    recorded = {"q": ("query",), "d": ("document",), "both": ("query", "document"), "x": ()}
    texts = ["q", "d", "both", "x"]
    assert texts_of_sides(texts, recorded, QUERY) == ["q", "both"]
    assert texts_of_sides(texts, recorded, DOCUMENT) == ["d", "both"]
    assert texts_of_sides(texts, recorded, None) == texts


def test_each_side_defaults_to_the_one_prompt() -> None:
    assert side_prompts(["none", "style"], query=None, document=None, plain="none") is None
    pair = side_prompts(["prompteol"], query="style", document=None, plain="none")
    assert pair == SidePrompts("style", "prompteol")
    alone = side_prompts([], query=None, document="tone", plain="none")
    assert alone == SidePrompts("none", "tone")
    with pytest.raises(SidesError, match="take one --prompt"):
        side_prompts(["none", "style"], query="tone", document=None, plain="none")


def test_mtebs_prompt_type_is_a_side() -> None:
    from mteb.types import PromptType

    assert side_of(PromptType.query) == "query"
    assert side_of(PromptType.document) == "document"
    assert side_of("query") == "query" and side_of(None) is None
