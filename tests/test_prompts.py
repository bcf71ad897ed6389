from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from moee_pipeline.prompts import (
    PROMPTS,
    Prompt,
    PromptError,
    encode_prompted,
    preprocess,
    resolve_prompt,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A cat sits", "A cat sits."),
        ("A cat sits.", "A cat sits."),
        ("Is it?", "Is it?"),
        ("Wow!", "Wow!"),
        ('He said "hi"', "He said 'hi'"),
        ("It's 'quoted'", "It's 'quoted'"),
        ('say "x" now', "say 'x' now."),
        ("", ""),
    ],
)
def test_preprocess_follows_the_reference_code(raw: str, expected: str) -> None:
    assert preprocess(raw) == expected


def test_named_templates_and_rendering() -> None:
    eol = resolve_prompt("prompteol")
    assert eol.render("A cat sits") == 'This sentence : "A cat sits." means in one word:"'
    assert resolve_prompt("none").render(' padded "q" ') == "\" padded 'q' .\""
    assert eol.id == "prompteol"
    assert len(PROMPTS) == 10
    assert all(t.count("{text}") == 1 for t in PROMPTS.values())


def test_custom_template_id_is_a_hash_prefix() -> None:
    template = "Summarize: {text} ->"
    prompt = resolve_prompt(template)
    expected = "custom-" + hashlib.sha256(template.encode()).hexdigest()[:8]
    assert prompt.id == expected
    assert prompt.render("hi") == "Summarize: hi. ->"


@pytest.mark.parametrize("bad", ["no placeholder", "{text} and {text}", "unknown-name"])
def test_bad_prompts_are_clear_errors(bad: str) -> None:
    with pytest.raises(PromptError, match=r"\{text\}"):
        resolve_prompt(bad)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)


def test_short_text_is_not_truncated(tokenizer: PreTrainedTokenizerFast) -> None:
    prompt = resolve_prompt("prompteol")
    out = encode_prompted(tokenizer, prompt, "A cat.", max_length=512)
    assert not out.truncated
    assert out.input_ids == tokenizer(prompt.render("A cat."))["input_ids"]


def test_truncation_cuts_the_text_never_the_template(tokenizer: PreTrainedTokenizerFast) -> None:
    prompt = resolve_prompt("prompteol")
    text = " ".join(f"word{i}" for i in range(400))
    out = encode_prompted(tokenizer, prompt, text, max_length=64)
    assert out.truncated
    assert len(out.input_ids) <= 64
    decoded = tokenizer.decode(out.input_ids, skip_special_tokens=True)
    assert isinstance(decoded, str)  # one sequence in, one text out
    assert decoded.startswith('This sentence : "word0 word1')
    assert decoded.endswith('" means in one word:"')
    # as much text as fits is kept: a few more tokens would not fit
    assert len(out.input_ids) >= 60


def test_template_longer_than_max_length_is_an_error(tokenizer: PreTrainedTokenizerFast) -> None:
    prompt = Prompt("custom", "x " * 100 + "{text}")
    with pytest.raises(PromptError, match="max-length"):
        encode_prompted(tokenizer, prompt, "some text here", max_length=16)


@pytest.mark.parametrize(
    ("spec", "same_as"),
    [
        (' "{text}" \n', "none"),  # the named prompt's template, in whitespace
        ('\tThis sentence : "{text}" means in one word:"  ', "prompteol"),
        ("  Summarize: {text} ->\n", "Summarize: {text} ->"),
    ],
)
def test_templates_that_render_alike_are_one_prompt(spec: str, same_as: str) -> None:
    """The prompting strips every rendered text, so surrounding whitespace is no new prompt."""
    prompt, other = resolve_prompt(spec), resolve_prompt(same_as)
    assert (prompt.name, prompt.template, prompt.id) == (other.name, other.template, other.id)
    for text in ["", "A cat sits", '  padded "q" ', "\n"]:
        assert Prompt("custom", spec).render(text) == other.render(text)


def test_whitespace_inside_a_template_still_makes_another_prompt() -> None:
    assert resolve_prompt("Summarize:  {text} ->").id != resolve_prompt("Summarize: {text} ->").id
