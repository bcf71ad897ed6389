"""`moee score`: evaluate cached features on MTEB for every requested combination, on a CPU.

For each task: load its data once; for each prompt: read the cache once; for each feature
setting (rw, pooling, layers, zscore): standardise once; then every method and weight is a
cheap concatenation or scaling, evaluated by mteb's own evaluators. No model is ever loaded.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from tqdm.auto import tqdm

from moee_pipeline.cache import scores, store
from moee_pipeline.quiet import quiet_libraries
from moee_pipeline.score.combine import (
    METHODS,
    Combination,
    Method,
    Parts,
    Pooling,
    RwMode,
    ZscoreMode,
    embed,
    format_layers,
    parse_layers,
    prepare_parts,
)
from moee_pipeline.score.encoder import CachedEncoder, TaskScore, evaluate_task, row_index
from moee_pipeline.task_types import TASK_TYPES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreConfig:
    """Everything one `moee score` run needs; each tuple is a sweep dimension."""

    model: str
    prompts: tuple[str, ...] = ("none",)
    tasks: tuple[str, ...] | None = None
    task_types: tuple[str, ...] | None = None
    methods: tuple[str, ...] = METHODS
    weights: tuple[float, ...] = (1.0,)
    rw: tuple[str, ...] = ("logits",)
    pooling: tuple[str, ...] = ("last",)
    layers: tuple[str, ...] = ("all",)
    zscore: tuple[str, ...] = ("auto",)
    splits: tuple[str, ...] = ("test",)
    cache_dir: Path = Path("cache")
    data_dir: Path | None = None
    output: Path = Path("results")
    progress: bool = True


def combinations(config: ScoreConfig) -> list[Combination]:
    """All configurations of a run, in a stable order, without duplicates.

    HS does not depend on RW options, so it is expanded over pooling and zscore only and
    records the first --rw/--layers value.
    """
    layer_sets = [parse_layers(spec) for spec in config.layers]
    combos: list[Combination] = []
    for method in config.methods:
        weights = config.weights if method == "MoEE-sum" else (None,)
        rws = config.rw[:1] if method == "HS" else config.rw
        layers = layer_sets[:1] if method == "HS" else layer_sets
        for w, rw, pooling, lay, z in itertools.product(
            weights, rws, config.pooling, layers, config.zscore
        ):
            combos.append(
                # the option values are checked by Combination itself
                Combination(
                    method=cast(Method, method),
                    weight=w,
                    rw=cast(RwMode, rw),
                    pooling=cast(Pooling, pooling),
                    layers=lay,
                    zscore=cast(ZscoreMode, z),
                )
            )
    return list(dict.fromkeys(combos))


def prompt_id(spec: str) -> str:
    """The cache folder name of a prompt given as extract takes it (name, template or id)."""
    from moee_pipeline.prompts import PromptError, resolve_prompt

    try:
        return resolve_prompt(spec).id
    except PromptError:
        return spec  # e.g. "custom-1a2b3c4d", as printed by extract


def resolve_tasks(config: ScoreConfig, prompt_ids: Sequence[str]) -> list[str]:
    """Explicit --tasks, else every complete cached task of the model and prompts (by type)."""
    from moee_pipeline.tasks import select_tasks, task_type

    if config.tasks:
        return select_tasks(tasks=config.tasks, task_types=config.task_types)
    if config.task_types:
        select_tasks(task_types=config.task_types)  # validates the type names
    cached = [
        e.task
        for e in store.list_cached(config.cache_dir, model=config.model)
        if e.complete and e.prompt_id in prompt_ids
    ]
    names = list(dict.fromkeys(cached))
    if config.task_types:
        names = [n for n in names if task_type(n) in config.task_types]
    if not names:
        raise store.CacheError(
            f"no complete cached tasks for model={store.model_slug(config.model)} "
            f"prompt={','.join(prompt_ids)} in {config.cache_dir}: run `moee extract` first"
        )
    return names


@dataclass(frozen=True)
class ScoreRow:
    """One line of scores.csv."""

    model: str
    prompt: str
    combo: Combination
    score: TaskScore

    def as_csv(self) -> dict[str, str]:
        """The row as scores.csv strings (weight empty except MoEE-sum)."""
        c = self.combo
        return {
            "model": self.model,
            "prompt": self.prompt,
            "method": c.method,
            "weight": "" if c.weight is None else format(c.weight, ".10g"),
            "rw": c.rw,
            "zscore": c.zscore,
            "pooling": c.pooling,
            "layers": format_layers(c.layers),
            "task": self.score.task,
            "task_type": self.score.task_type,
            "split": self.score.split,
            "main_metric": self.score.main_metric,
            "main_score": repr(self.score.main_score),
        }


def _setting(combo: Combination) -> tuple[object, ...]:
    """What `prepare_parts` depends on; combos sharing it share one standardisation."""
    return (combo.rw, combo.pooling, combo.layers, combo.zscore == "none")


@dataclass
class _TaskRun:
    """Per (task, prompt) working state: parts per setting and scores per effective embedding."""

    features: store.Features
    index: dict[str, int]
    parts: dict[tuple[object, ...], Parts] = field(default_factory=dict)
    scores: dict[tuple[object, ...], list[TaskScore]] = field(default_factory=dict)

    def parts_for(self, combo: Combination) -> Parts:
        key = _setting(combo)
        if key not in self.parts:
            m = self.features.manifest
            arrays = self.features.arrays
            self.parts[key] = prepare_parts(
                hs=arrays.get(f"hs_{combo.pooling}"),
                rw=arrays.get(f"rw_{combo.pooling}"),
                rw_mode=combo.rw,
                layers=combo.layers,
                zscore_mode=combo.zscore,
                n_moe_layers=int(m["n_moe_layers"]),
                n_experts=int(m["n_experts"]),
            )
        return self.parts[key]


def run_score(config: ScoreConfig) -> list[ScoreRow]:
    """Score every (prompt, task, configuration); write scores.csv and mteb's JSON results."""
    from moee_pipeline.tasks import eval_splits, load_task

    combos = combinations(config)
    prompts = list(dict.fromkeys(prompt_id(p) for p in config.prompts))
    tasks = resolve_tasks(config, prompts)
    slug = store.model_slug(config.model)
    columns = sorted(
        {f"hs_{c.pooling}" for c in combos if c.uses_hs}
        | {f"rw_{c.pooling}" for c in combos if c.uses_rw}
    )
    rows: list[ScoreRow] = []
    total = len(tasks) * len(prompts) * len(combos)
    with (
        quiet_libraries(),
        tqdm(total=total, desc="scoring", unit="eval", disable=not config.progress) as bar,
    ):
        for name in tasks:
            # read every prompt's cache first: a missing extraction fails before any evaluation
            features = {
                p: store.read_features(
                    config.cache_dir, model=config.model, prompt_id=p, task=name, columns=columns
                )
                for p in prompts
            }
            task = load_task(name, cache_dir=config.cache_dir, data_dir=config.data_dir)
            splits = eval_splits(task, config.splits)
            for p in prompts:
                feats = features.pop(p)
                run = _TaskRun(features=feats, index=row_index(feats.text_ids))
                hint = (
                    f"run `moee extract --model {config.model} --prompt {p} --tasks {name} "
                    f"--splits {','.join(splits)}`"
                )
                for combo in combos:
                    bar.set_postfix_str(f"{name} {p} {combo.folder}", refresh=False)
                    key = combo.effective_key()
                    if key not in run.scores:
                        encoder = CachedEncoder(
                            index=run.index,
                            embeddings=embed(run.parts_for(combo), combo),
                            name=f"moee/{slug}",
                            revision=str(feats.manifest.get("revision") or "unknown"),
                            hint=hint,
                        )
                        out = config.output / "mteb" / slug / p / combo.folder
                        run.scores[key] = evaluate_task(
                            task, encoder=encoder, output_dir=out, splits=splits
                        )
                    rows.extend(ScoreRow(config.model, p, combo, s) for s in run.scores[key])
                    bar.update(1)
    write_scores(config.output / scores.SCORES_FILE, rows)
    return rows


def write_scores(path: Path, rows: Sequence[ScoreRow]) -> None:
    """Merge this run's rows into scores.csv (see `cache.scores.merge_rows`)."""
    scores.merge_rows(path, [r.as_csv() for r in rows])


def _label(combo: Combination, varying: set[str]) -> str:
    """A column title: the method, its weight, and only the options that vary in this run."""
    label = combo.method + (f"(w={combo.weight:.10g})" if combo.weight is not None else "")
    extras = [
        f"{name}={value}"
        for name, value in (
            ("rw", combo.rw),
            ("pool", combo.pooling),
            ("layers", format_layers(combo.layers)),
            ("z", combo.zscore),
        )
        if name in varying and (combo.method != "HS" or name in {"pool", "z"})
    ]
    return " ".join([label, *extras])


def format_table(rows: Sequence[ScoreRow]) -> str:
    """Tasks x configurations (x100, 2 decimals), task-type means and their mean, per prompt."""
    if not rows:
        return "(no scores)"
    # one split per table: test when scored (validation rows are for `moee report`)
    split = "test" if any(r.score.split == "test" for r in rows) else rows[0].score.split
    rows = [r for r in rows if r.score.split == split]
    varying = {
        name
        for name, get in (
            ("rw", lambda c: c.rw),
            ("pool", lambda c: c.pooling),
            ("layers", lambda c: c.layers),
            ("z", lambda c: c.zscore),
        )
        if len({get(r.combo) for r in rows}) > 1
    }
    groups: dict[tuple[str, str], list[ScoreRow]] = {}
    for r in rows:
        groups.setdefault((r.model, r.prompt), []).append(r)
    blocks = []
    for (model, prompt), group in groups.items():
        labels = list(dict.fromkeys(_label(r.combo, varying) for r in group))
        cell = {(r.score.task, _label(r.combo, varying)): 100 * r.score.main_score for r in group}
        types = {r.score.task: r.score.task_type for r in group}
        order = sorted(types, key=lambda t: (_type_rank(types[t], TASK_TYPES), t))
        lines: list[tuple[str, list[float]]] = [
            (t, [cell.get((t, lab), np.nan) for lab in labels]) for t in order
        ]
        type_means = []
        for kind in dict.fromkeys(types[t] for t in order):
            members = [t for t in order if types[t] == kind]
            means = [
                float(np.mean([cell.get((t, lab), np.nan) for t in members])) for lab in labels
            ]
            type_means.append((f"[{kind}] avg", means))
        overall = [float(np.mean([m[i] for _, m in type_means])) for i in range(len(labels))]
        body = [*lines, *type_means, ("Avg over task types", overall)]
        width = max(len(name) for name, _ in body)
        cols = [max(len(lab), 7) for lab in labels]
        header = " | ".join(
            [f"{'task':<{width}}", *(f"{lab:>{w}}" for lab, w in zip(labels, cols, strict=True))]
        )
        out = [f"{model} / prompt={prompt} / split={split}", header, "-" * len(header)]
        for i, (name, values) in enumerate(body):
            if i in {len(lines), len(lines) + len(type_means)}:
                out.append("-" * len(header))
            cells = (f"{v:>{w}.2f}" for v, w in zip(values, cols, strict=True))
            out.append(" | ".join([f"{name:<{width}}", *cells]))
        blocks.append("\n".join(out))
    return "\n\n".join(blocks)


def _type_rank(kind: str, order: Sequence[str]) -> int:
    return order.index(kind) if kind in order else len(order)
