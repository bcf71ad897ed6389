"""Query and document prompts: which template each side of a retrieval task is encoded under.

`--prompt` applies to both sides; `--query-prompt` and `--document-prompt` give a side its own
template, each defaulting to the `--prompt` value. Under one template a text is one cached row
(even one that is both a query and a document), in one entry that holds every text of the task,
as always. Under two templates each side has its own entry: the queries' rows in the entry of
the query prompt, the documents' in the entry of the document prompt, each manifest recording
the side(s) it holds (`sides`), so completeness judges it against that side's recorded texts
only, and an entry holding every text (a plain run's) serves either side as it is.

A score of two templates names both in its one prompt value, `query-<id>+document-<id>`
(`pair_label`), which is what scores.csv's prompt column, mteb's experiment and the report's
row keys hold; a score of one template keeps that template's id, as before.

Torch-, mteb- and pyarrow-free: both CLIs and the cache's completeness use it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from moee_pipeline.errors import MoeeError
from moee_pipeline.vocabulary import DOCUMENT, QUERY, SIDES, Side

__all__ = [
    "SidePrompts",
    "Sides",
    "SidesError",
    "held_sides",
    "merge_sides",
    "pair_label",
    "parse_label",
    "side_of",
    "side_prompts",
    "texts_of_sides",
]

#: A prompt as the options give it: a spec or id (str), or a resolved `prompts.Prompt`.
P = TypeVar("P")

#: The sides an entry holds; None wherever it holds every text of its task.
Sides = frozenset[Side]

_QUERY_TAG, _DOCUMENT_TAG, _JOIN = f"{QUERY}-", f"{DOCUMENT}-", "+"


class SidesError(MoeeError, ValueError):
    """A combination of prompt options that cannot be run; the message says what to give."""


@dataclass(frozen=True)
class SidePrompts(Generic[P]):
    """The prompt of each side of a retrieval task: specs, ids or `Prompt`s."""

    query: P
    document: P

    def of(self, side: Side) -> P:
        return self.query if side == QUERY else self.document


def side_prompts(
    prompts: Sequence[P], *, query: P | None, document: P | None, plain: P
) -> SidePrompts[P] | None:
    """The sides' prompts from the options (None when neither side option is given); each side
    defaults to the one `--prompt` value (`plain` where none is given).

    Raises:
        SidesError: a side option with several `--prompt` values (which one would the other
            side take?).
    """
    if query is None and document is None:
        return None
    if len(prompts) > 1:
        raise SidesError(
            "--query-prompt/--document-prompt take one --prompt (the other side's default): "
            f"got {len(prompts)}; run one --prompt at a time"
        )
    both = prompts[0] if prompts else plain
    return SidePrompts(query=query or both, document=document or both)


def pair_label(query_id: str, document_id: str) -> str:
    """The one prompt value of a score: the id itself under one template, else both ids."""
    if query_id == document_id:
        return query_id
    return f"{_QUERY_TAG}{query_id}{_JOIN}{_DOCUMENT_TAG}{document_id}"


def parse_label(label: str) -> SidePrompts[str] | None:
    """The two prompt ids a `pair_label` of two templates names; None for a plain prompt id
    (prompt ids never hold a `+`)."""
    query, sep, document = label.partition(_JOIN)
    if not sep or not query.startswith(_QUERY_TAG) or not document.startswith(_DOCUMENT_TAG):
        return None
    return SidePrompts(query[len(_QUERY_TAG) :], document[len(_DOCUMENT_TAG) :])


def side_of(prompt_type: Any) -> Side | None:
    """mteb's prompt type (its `PromptType`, or its value) as our side, None for none."""
    value = getattr(prompt_type, "value", prompt_type)
    return next((side for side in SIDES if side == value), None)


def held_sides(manifest: Mapping[str, Any] | None) -> Sides | None:
    """The sides a manifest says its entry holds; None (every text) for an entry that records
    none, as every entry of one template does."""
    recorded = (manifest or {}).get("sides")
    if not recorded:
        return None
    return frozenset(s for s in SIDES if s in recorded)


def merge_sides(held: Sides | None, asked: Sides | None) -> Sides | None:
    """What an entry holds once a run adds the `asked` side(s) to the `held` ones (None: all)."""
    if held is None or asked is None:
        return None
    merged = held | asked
    return None if merged >= frozenset(SIDES) else merged


def texts_of_sides(
    texts: Iterable[str], text_sides: Mapping[str, Collection[str]], sides: Sides | None
) -> list[str]:
    """The texts an entry of `sides` holds (all of them for None): those mteb encodes as one of
    those sides, in the order given."""
    if sides is None:
        return list(texts)
    return [t for t in texts if sides.intersection(text_sides.get(t, ()))]
