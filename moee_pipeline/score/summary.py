"""The terminal table `moee score` prints: tasks x configurations, per model and prompt.

scores.csv is the record; this is a quick look at one split (test when scored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from moee_pipeline.score.combine import Combination, format_layers
from moee_pipeline.vocabulary import TASK_TYPES

if TYPE_CHECKING:
    from moee_pipeline.score.rows import ScoreRow


def _label(combo: Combination, varying: set[str]) -> str:
    """A column title: the method, its weight, and only the options that vary in this run."""
    label = combo.method + (f"(w={combo.weight_text})" if combo.method == "MoEE-sum" else "")
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
