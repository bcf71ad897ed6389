"""The terminal table `moee score` prints: tasks x configurations, per model and prompt.

scores.csv is the record; this is a quick look at one split (test when scored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from moee_pipeline.score.combine import Combination, format_layers
from moee_pipeline.vocabulary import (
    HS,
    PAPER_AVERAGE_LABEL,
    SUM,
    paper_average,
    task_type_means,
    type_rank,
)

if TYPE_CHECKING:
    from moee_pipeline.score.rows import ScoreRow


def _label(combo: Combination, varying: set[str]) -> str:
    """A column title: the method, its weight, and only the options that vary in this run."""
    label = combo.method + (f"(w={combo.weight_text})" if combo.method == SUM else "")
    extras = [
        f"{name}={value}"
        for name, value in (
            ("rw", combo.rw),
            ("pool", combo.pooling),
            ("layers", format_layers(combo.layers)),
            ("z", combo.zscore),
        )
        if name in varying and (combo.method != HS or name in {"pool", "z"})
    ]
    return " ".join([label, *extras])


def format_table(rows: Sequence[ScoreRow]) -> str:
    """Tasks x configurations (x100, 2 decimals), task-type means and the paper's average of
    them (its six types only), per model and prompt."""
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
        order = sorted(types, key=lambda t: (type_rank(types[t]), t))
        lines: list[tuple[str, list[float]]] = [
            (t, [cell.get((t, lab), np.nan) for lab in labels]) for t in order
        ]
        # a task missing under a label makes its type's mean NaN, not a mean of fewer tasks
        per_label = [
            task_type_means((types[t], cell.get((t, lab), np.nan)) for t in order) for lab in labels
        ]
        type_means = [
            (f"[{kind}] avg", [means[kind] for means in per_label]) for kind in per_label[0]
        ]
        overall = [paper_average(means) for means in per_label]
        body = [*lines, *type_means, (PAPER_AVERAGE_LABEL, overall)]
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
