"""Property tests of prompting and truncation (hypothesis): what must hold for every text."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transformers import PreTrainedTokenizerFast

from moee_pipeline.cache.parts import text_id
from moee_pipeline.extract.runinfo import shard_of
from moee_pipeline.prompts import PLACEHOLDER, PROMPTS, Prompt, encode_prompted, preprocess

texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=120)
edge = st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="{}")
inner = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="{}"), max_size=15)
SPECIAL = ("<s>", "</s>", "<pad>")  # the tokenizer's special tokens: not text a template holds
custom = st.builds(
    lambda a, p, s, b: Prompt("custom", f"{a}{p}{PLACEHOLDER}{s}{b}"), edge, inner, inner, edge
).filter(lambda p: not any(token in p.template for token in SPECIAL))
prompts = st.one_of(st.sampled_from([Prompt(n, t) for n, t in PROMPTS.items()]), custom)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))


@given(texts)
def test_cleaning_is_idempotent(text: str) -> None:
    once = preprocess(text)
    assert preprocess(once) == once
    assert '"' not in once


@given(prompts, texts)
def test_rendering_keeps_the_template_and_the_cleaned_text(prompt: Prompt, text: str) -> None:
    rendered = prompt.render(text)
    head, tail = prompt.prefix.lstrip(), prompt.suffix.rstrip()
    assert rendered.startswith(head) and rendered.endswith(tail)
    assert rendered[len(head) : len(rendered) - len(tail)] == preprocess(text)


@settings(max_examples=60, deadline=None)
@given(prompts, texts, st.integers(min_value=0, max_value=40))
@example(Prompt("prompteol", PROMPTS["prompteol"]), "many words " * 40, 5)  # surely truncated
@example(Prompt("none", PROMPTS["none"]), 'He said "x"', 0)  # only the template fits
def test_truncation_cuts_the_text_never_the_template(
    tokenizer: PreTrainedTokenizerFast, prompt: Prompt, text: str, room: int
) -> None:
    template_ids = tokenizer((prompt.prefix + prompt.suffix).strip())["input_ids"]
    max_length = len(template_ids) + room
    out = encode_prompted(tokenizer, prompt, text, max_length=max_length)
    assert len(out.input_ids) <= max_length
    decoded = tokenizer.decode(
        out.input_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )
    assert isinstance(decoded, str)  # one sequence in, one text out
    head, tail = prompt.prefix.lstrip(), prompt.suffix.rstrip()
    assert decoded.startswith(head) and decoded.endswith(tail)  # the template survives intact
    kept = decoded[len(head) : len(decoded) - len(tail)]
    cleaned = preprocess(text)
    assert cleaned.startswith(kept)  # the text inside the template is a prefix of the cleaned text
    assert out.truncated == (kept != cleaned)
    if not out.truncated:
        assert out.input_ids == tokenizer(prompt.render(text))["input_ids"]


@given(texts, st.integers(min_value=1, max_value=64))
def test_text_ids_are_stable_sha256_of_the_raw_text(text: str, count: int) -> None:
    tid = text_id(text)
    assert tid == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert text_id(str(text)) == tid  # the same text, another object: the same id
    assert shard_of(tid, count) == int(tid[:12], 16) % count


def test_text_ids_are_pinned() -> None:
    # a change of key scheme would orphan every cache: these values must never change
    assert text_id("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert text_id("A cat sits.") == hashlib.sha256(b"A cat sits.").hexdigest()
