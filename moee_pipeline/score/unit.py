"""One (task, prompt) unit of `moee score`: the one function every runner calls (`score_one`).

For each task: load its data once; for each prompt: open the cache entry once (one unit),
checked whole, and hold its features in memory when it has at most `chunk_rows` rows (every
task but a large corpus), else read them in chunks from disk (`cache.source`); for each split:
fit the z-score statistics on the texts that split's evaluation encodes (`zscore_fit="split"`)
or on every cached text (`"task"`), once per feature setting (rw, pooling, layers, zscore), in
one streaming pass; then every method and weight computes the embeddings of the rows mteb asks
for when it asks (`score.embedder`), evaluated alone per split by mteb's own evaluators. No
model is ever loaded, and no task's embedding matrix is held beyond what mteb asks for at once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from moee_pipeline.cache import layout
from moee_pipeline.cache.snapshots import read_encoded_texts, read_text_sides
from moee_pipeline.cache.source import RowReader, open_source
from moee_pipeline.quiet import quiet_libraries
from moee_pipeline.score.combine import Combination
from moee_pipeline.score.config import ScoreConfig, ScoreError
from moee_pipeline.score.embedder import ConfigRows, fit_columns, fit_setting, parts_of_rows
from moee_pipeline.score.encoder import (
    CachedEncoder,
    TaskScore,
    cache_rows,
    evaluate_split,
    row_index,
)
from moee_pipeline.score.plan import UnitKey, entry_prompts
from moee_pipeline.score.results import save_split_result
from moee_pipeline.score.rows import ScoreRow, experiment_kwargs
from moee_pipeline.score.sided import (
    JoinedRows,
    fit_rows,
    joined,
    provenance_of,
    side_index,
)
from moee_pipeline.score.standardise import Standardiser
from moee_pipeline.score.sweep import combinations
from moee_pipeline.score.weights import auto_weight, pair_cosines, sample_pairs
from moee_pipeline.sides import SidePrompts, parse_label
from moee_pipeline.tasks.meta import encoder_meta
from moee_pipeline.vocabulary import DOCUMENT, QUERY, SUM, Side

if TYPE_CHECKING:
    from mteb.abstasks import AbsTask

__all__ = ["Progress", "TaskLoader", "Unit", "score_one", "score_unit"]

logger = logging.getLogger(__name__)

#: text_id -> row per side, for a unit of two entries (`score.sided.side_index`).
SideIndex = dict[Side, dict[str, int]]


class Progress(Protocol):
    """What a unit reports while it scores in the driver's process (the run's one bar)."""

    def evaluating(self, what: str) -> None:
        """One evaluation starts (`what` names task, prompt, split and configuration)."""

    def evaluated(self, count: int = 1) -> None:
        """`count` evaluations are done."""


def _setting(combo: Combination) -> tuple[object, ...]:
    """What the standardisation depends on; combos sharing it share one fit."""
    return (combo.rw, combo.pooling, combo.layers, combo.hs_layers, combo.zscore == "none")


@dataclass
class _SplitRun:
    """Per (task, prompt, split) working state: z-score fit rows and the fit per setting."""

    features: RowReader
    fit_rows: np.ndarray | None
    chunk_rows: int
    fitted: dict[tuple[object, ...], Standardiser] = field(default_factory=dict)

    def standardiser(self, combo: Combination) -> Standardiser:
        key = _setting(combo)
        if key not in self.fitted:
            self.fitted[key] = fit_setting(
                self.features, combo, fit_rows=self.fit_rows, chunk_rows=self.chunk_rows
            )
        return self.fitted[key]

    def vectors(self, combo: Combination) -> ConfigRows:
        """The embeddings of any cached row under a resolved configuration, computed for the
        rows mteb asks for (a retrieval corpus: chunk by chunk, by mteb's search)."""
        return ConfigRows(self.features, self.standardiser(combo), combo)


@dataclass(frozen=True)
class Unit:
    """One (task, prompt) of a run: its loaded task, cached features and where rows go.

    A retrieval task whose sides have their own templates reads two entries as one
    (`score.sided.JoinedRows`); `prompt` is then the pair's label.
    """

    config: ScoreConfig
    task: AbsTask
    prompt: str
    features: RowReader
    splits: tuple[str, ...]

    @property
    def pair(self) -> SidePrompts[str] | None:
        """The two sides' prompt ids of a unit of two entries, else None."""
        return parse_label(self.prompt)

    @property
    def name(self) -> str:
        return str(self.task.metadata.name)

    @property
    def hint(self) -> str:
        c, pair = self.config, self.pair
        prompts = (
            f"--prompt {self.prompt}"
            if pair is None
            else f"--query-prompt {pair.query} --document-prompt {pair.document}"
        )
        return (
            f"run `moee extract --model {c.model} {prompts} --tasks {self.name} "
            f"--splits {','.join(self.splits)}`"
        )


def _encoded_texts(unit: Unit, split: str) -> list[str]:
    """The texts the split's evaluation encodes, as extraction recorded them beside the snapshot.

    With `--zscore-fit task` a cache without the record is recorded now (mteb's own evaluation
    with a recording encoder), since only the auto weight's pair sample needs the list.
    """
    texts = read_encoded_texts(unit.name, split, cache_dir=unit.config.cache_dir)
    if texts is not None:
        return texts
    if unit.config.zscore_fit == "split":
        raise ScoreError(
            f"{unit.name}/{split}: no record of the texts this split encodes; re-extract "
            f"({unit.hint}) or use --zscore-fit task"
        )
    from moee_pipeline.tasks import split_texts

    return split_texts(unit.task, splits=[split], cache_dir=unit.config.cache_dir)[split]


def _rows_of(texts: Sequence[str], index: dict[str, int], unit: Unit, split: str) -> np.ndarray:
    return cache_rows(texts, index, where=f"{unit.name}/{split}", hint=unit.hint)


def _auto_pairs(
    unit: Unit, split: str, index: dict[str, int], sides: SideIndex | None = None
) -> np.ndarray:
    """Row pairs the auto weight is fitted on: the pairs the evaluation scores, else a sample
    (retrieval's are (query, document): with two templates, each from its side's rows)."""
    from moee_pipeline.tasks.pairs import evaluation_pairs

    pairs = evaluation_pairs(unit.task, split)
    if pairs is not None and sides is not None:
        where = f"{unit.name}/{split}"
        queries = cache_rows([q for q, _ in pairs], sides[QUERY], where=where, hint=unit.hint)
        documents = cache_rows([d for _, d in pairs], sides[DOCUMENT], where=where, hint=unit.hint)
        return np.stack([queries, documents], axis=1)
    if pairs is not None:
        flat = [t for pair in pairs for t in pair]
        return _rows_of(flat, index, unit, split).reshape(-1, 2)
    rows = _rows_of(_encoded_texts(unit, split), index, unit, split)
    return rows[sample_pairs(len(rows))]


def _resolve(combo: Combination, run: _SplitRun, pairs: np.ndarray, where: str) -> Combination:
    """The combination with its auto weight chosen on this split's pairs (fixed ones as is)."""
    if combo.resolved:
        return combo
    rows, local = np.unique(pairs, return_inverse=True)
    parts = parts_of_rows(run.features, run.standardiser(combo), combo, rows)
    if parts.hs_unit is None or parts.rw_unit is None:
        raise ScoreError(f"{SUM}'s auto weight needs both HS and RW parts")
    local = local.reshape(-1, 2)
    try:
        alpha = auto_weight(pair_cosines(parts.hs_unit, local), pair_cosines(parts.rw_unit, local))
    except ValueError as error:
        raise ScoreError(
            f"{where}: no auto weight ({error}): `moee verify` the cache, or use a fixed --weight"
        ) from None
    return dataclasses.replace(combo, weight=alpha)


def score_unit(
    unit: Unit, combos: Sequence[Combination], *, progress: Progress | None = None
) -> list[ScoreRow]:
    """Score one (task, prompt) under every configuration and split; write mteb's results.

    Each split is evaluated alone on a fresh private copy of the task, with z-score statistics
    fitted as `zscore_fit` says, so adding another split's texts to the cache changes nothing.
    A score that is not a number gets no mteb result file; its row goes back to the driver,
    which reports it as its task's error and never writes it (`run.run_score`).
    """
    config, feats = unit.config, unit.features
    index = row_index(feats.text_ids)
    sides = side_index(feats) if isinstance(feats, JoinedRows) else None
    provenance = provenance_of(feats, zscore_fit=config.zscore_fit)
    slug = layout.model_slug(config.model)
    revision = str(feats.manifest.get("revision") or "unknown")
    task_fit: _SplitRun | None = None
    rows: list[ScoreRow] = []
    for split in unit.splits:
        if config.zscore_fit == "split":
            fit = _fit_rows(unit, split, index, sides)
            run = _SplitRun(features=feats, fit_rows=fit, chunk_rows=config.chunk_rows)
        else:
            task_fit = task_fit or _SplitRun(feats, None, chunk_rows=config.chunk_rows)
            run = task_fit
        auto = any(not c.resolved for c in combos)
        pairs = _auto_pairs(unit, split, index, sides) if auto else None
        done: dict[tuple[object, ...], TaskScore] = {}
        for combo in combos:
            if progress is not None:
                progress.evaluating(f"{unit.name} {unit.prompt} {split} {combo.folder}")
            where = f"{unit.name}/{split}"
            resolved = _resolve(combo, run, pairs, where) if pairs is not None else combo
            key = (resolved.effective_key(), resolved.weight_rule)
            if key not in done:
                vectors = run.vectors(resolved)
                meta = encoder_meta(
                    name=f"moee/{slug}",
                    revision=revision,
                    embed_dim=vectors.dim,
                    experiment=experiment_kwargs(unit.prompt, resolved, provenance),
                )
                encoder = CachedEncoder(
                    index=index,
                    embeddings=vectors,
                    name=meta.name or "",
                    hint=unit.hint,
                    sides=sides,
                )
                done[key], result = evaluate_split(
                    unit.task, encoder=encoder, split=split, corpus_chunk_size=config.chunk_rows
                )
                if math.isfinite(done[key].main_score):  # NaN is its task's error (`run`)
                    save_split_result(config.output, meta, result)
            rows.append(ScoreRow(slug, unit.prompt, resolved, done[key], provenance))
            if progress is not None:
                progress.evaluated()
    return rows


def _fit_rows(unit: Unit, split: str, index: dict[str, int], sides: SideIndex | None) -> np.ndarray:
    """The rows of the texts the split encodes: with two templates, each side's texts in its
    own entry (queries and documents together, one set of statistics)."""
    texts = _encoded_texts(unit, split)
    if sides is None:
        return _rows_of(texts, index, unit, split)
    recorded = read_text_sides(unit.name, split, cache_dir=unit.config.cache_dir)
    if recorded is None:
        raise ScoreError(
            f"{unit.name}/{split}: the record of its texts does not say which are queries and "
            f"which documents; re-extract ({unit.hint})"
        )
    return fit_rows(texts, recorded, sides, where=f"{unit.name}/{split}", hint=unit.hint)


@dataclass
class TaskLoader:
    """Loads a task and its splits once for consecutive units of the same task.

    Units come task by task, prompts within, so one remembered task serves every prompt of it
    (evaluations work on private copies, so sharing the loaded task changes nothing).
    """

    config: ScoreConfig
    _last: tuple[str, AbsTask, tuple[str, ...]] | None = field(default=None, init=False, repr=False)

    def load(self, name: str) -> tuple[AbsTask, tuple[str, ...]]:
        """The loaded task and the splits of `config.splits` it has."""
        from moee_pipeline.tasks import eval_splits, load_task

        if self._last is None or self._last[0] != name:
            c = self.config
            task = load_task(name, cache_dir=c.cache_dir, data_dir=c.data_dir)
            self._last = (name, task, tuple(eval_splits(task, c.splits)))
        return self._last[1], self._last[2]


def score_one(
    config: ScoreConfig,
    key: UnitKey,
    *,
    tasks: TaskLoader | None = None,
    progress: Progress | None = None,
) -> list[ScoreRow]:
    """Every configuration of one (task, prompt), in whichever process runs it: the one unit
    function of the serial, process and Ray runners.

    `tasks` lets consecutive units of one task share its loaded data; `progress` reports each
    evaluation (only where the run's bar lives, the driver's process).
    """
    name, prompt = key
    combos = combinations(config)
    columns = _columns(combos)
    readers = [_reader(config, name, p, columns) for p in entry_prompts(prompt)]
    features = joined(readers, where=f"{name} [{prompt}]")
    with quiet_libraries():
        task, splits = (tasks or TaskLoader(config)).load(name)
        unit = Unit(config, task, prompt, features, splits)
        return score_unit(unit, combos, progress=progress)


def _reader(config: ScoreConfig, task: str, prompt: str, columns: list[str]) -> RowReader:
    """One entry's features: held in memory up to `chunk_rows` rows, else read in chunks."""
    source = open_source(
        config.cache_dir, model=config.model, prompt_id=prompt, task=task, columns=columns
    )
    return source if source.rows > config.chunk_rows else source.load(columns)


def _columns(combos: Sequence[Combination]) -> list[str]:
    """Every column a unit's settings read: HS (of its --hs-layers) and RW of each pooling
    (each setting fits both)."""
    return sorted({column for c in combos for column in fit_columns(c)})
