"""Prompt templates and the text preprocessing of the MoEE reference code.

A prompt turns a raw text into the string the model reads. The one-word prompts
(PromptEOL and its eight variants) end just before the model would answer, so the
last token's router weights and hidden state summarise the text: the end of the
template must therefore survive truncation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moee_pipeline.errors import MoeeError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PLACEHOLDER = "{text}"

#: The paper's prompts, by name (facts from the MoEE paper and its reference code).
PROMPTS: dict[str, str] = {
    "none": '"{text}"',
    "prompteol": 'This sentence : "{text}" means in one word:"',
    "style": 'In one word, describe the style of the following sentence - "{text}" :"',
    "sentiment": (
        "In one word, describe the sentiment of the following sentence "
        '(positive, neutral, or negative) - "{text}" :'
    ),
    "tone": (
        'In one word, describe the tone of the following sentence - "{text}" '
        "(e.g., formal, informal, humorous, serious):"
    ),
    "intent": (
        "In one word, describe the intent behind the following sentence "
        '(e.g., request, suggestion, command) - "{text}" :'
    ),
    "complexity": (
        "In one word, rate the complexity of the following sentence "
        '(simple, moderate, complex) - "{text}" :'
    ),
    "subjectivity": (
        "In one word, describe whether the following sentence is subjective or objective - "
        '"{text}" :'
    ),
    "language_style": (
        "In one word, describe the language style of the following sentence "
        '(e.g., academic, conversational, literary) - "{text}" :'
    ),
    "grammar_structure": (
        "In one word, describe the grammatical structure of the following sentence "
        '(simple, compound, complex) - "{text}" :'
    ),
}

_SENTENCE_ENDS = (".", "?", "!", '"', "'")


class PromptError(MoeeError, ValueError):
    """A prompt name or template that cannot be used."""


@dataclass(frozen=True)
class Prompt:
    """A named template with exactly one `{text}` placeholder."""

    name: str
    template: str

    @property
    def id(self) -> str:
        """The cache folder name: the prompt's name, or custom-<8 hex of the template's sha256>."""
        if self.name in PROMPTS and PROMPTS[self.name] == self.template:
            return self.name
        return f"custom-{hashlib.sha256(self.template.encode('utf-8')).hexdigest()[:8]}"

    @property
    def prefix(self) -> str:
        return self.template.split(PLACEHOLDER)[0]

    @property
    def suffix(self) -> str:
        return self.template.split(PLACEHOLDER)[1]

    def render(self, text: str) -> str:
        """The string the model reads for a raw text."""
        return (self.prefix + preprocess(text) + self.suffix).strip()


def resolve_prompt(spec: str) -> Prompt:
    """A prompt from a name (`none`, `prompteol`, ...) or a custom template containing {text}.

    A template loses the whitespace around it, which `render` strips from every prompted text
    anyway, and one that is then a named prompt's template is that prompt: templates that
    give the model the same strings share one cache entry.
    """
    if spec in PROMPTS:
        return Prompt(spec, PROMPTS[spec])
    if spec.count(PLACEHOLDER) == 1:
        template = spec.strip()
        named = [name for name, known in PROMPTS.items() if known == template]
        return Prompt(named[0], template) if named else Prompt("custom", template)
    if PLACEHOLDER in spec:
        raise PromptError(f"template {spec!r} must contain {PLACEHOLDER} exactly once")
    names = ", ".join(PROMPTS)
    raise PromptError(
        f"unknown prompt {spec!r}: use one of {names}, or a template containing {PLACEHOLDER}"
    )


def prompt_id(spec: str) -> str:
    """The cache folder name of a prompt given as `extract` takes it: a name, a template, or the
    id itself (`custom-1a2b3c4d`, as extract prints it), so later stages find its entry."""
    try:
        return resolve_prompt(spec).id
    except PromptError:
        return spec


def preprocess(text: str) -> str:
    """The reference code's cleanup: end the text with punctuation and turn `"` into `'`.

    Quotes are replaced because the templates quote the text; a text that already ends
    like a sentence keeps its ending.
    """
    if text and not text.endswith(_SENTENCE_ENDS):
        text += "."
    return text.replace('"', "'")


@dataclass(frozen=True)
class Prompted:
    """A prompted text ready for the model."""

    input_ids: list[int]
    truncated: bool


def encode_prompted(
    tokenizer: PreTrainedTokenizerBase, prompt: Prompt, text: str, *, max_length: int
) -> Prompted:
    """Tokenize a prompted text, cutting the text inside the template if it is too long.

    The template's tokens are never cut: PromptEOL works because of how the prompt ends.
    """
    ids = tokenizer(prompt.render(text))["input_ids"]
    if len(ids) <= max_length:
        return Prompted(ids, truncated=False)
    body = preprocess(text)
    pieces = tokenizer(body, add_special_tokens=False, return_offsets_mapping=True)
    offsets = pieces["offset_mapping"]
    keep = len(offsets) - (len(ids) - max_length)
    while keep > 0:
        cut = body[: offsets[keep - 1][1]]
        ids = tokenizer((prompt.prefix + cut + prompt.suffix).strip())["input_ids"]
        if len(ids) <= max_length:
            return Prompted(ids, truncated=True)
        keep -= max(1, len(ids) - max_length)
    ids = tokenizer((prompt.prefix + prompt.suffix).strip())["input_ids"]
    if len(ids) > max_length:
        raise PromptError(
            f"the template alone is {len(ids)} tokens, more than --max-length {max_length}: "
            "raise --max-length or shorten the template"
        )
    return Prompted(ids, truncated=True)
