"""The MoEE paper's published numbers (shipped as package data) and their comparison with ours.

`data/moee_paper_results.csv` is a verbatim copy of every result number of the paper (Tables 3-4 and
appendix Tables 8-12), x100: one row per (model, prompt, method, task), plus rows whose task is
`(task-type average)` or `(average of the six task types)` (task_type `Average`). Those averages are
facts too: they are shown as published, never recomputed. When our run covers fewer of a type's
tasks than the paper, the paper's mean over the same tasks is shown next to it and the difference
is taken against that, so the comparison stays like for like.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from moee_pipeline.cache.layout import model_slug
from moee_pipeline.vocabulary import HS, paper_average, task_type_means

logger = logging.getLogger(__name__)

TYPE_AVERAGE = "(task-type average)"
SIX_TYPE_AVERAGE = "(average of the six task types)"
AVERAGE = "Average"
#: The paper's setting: router logits, z-scored (RW and the MoEE parts), last token, every MoE
#: layer, the last layer's hidden state. Rows scored otherwise are listed as not comparable,
#: never compared.
PAPER_SETTING = {
    "rw": "logits", "zscore": "auto", "pooling": "last", "layers": "all", "hs_layers": "last",
}  # fmt: skip


def load_paper() -> pd.DataFrame:
    """The published numbers: columns model, prompt, method, task_type, task, score_x100."""
    source = resources.files("moee_pipeline.report").joinpath("data/moee_paper_results.csv")
    with source.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle, keep_default_na=False, dtype={"score_x100": float})


def paper_task_order(paper: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """The paper's tasks of each type, in the paper's order."""
    tasks = paper[~paper["task"].isin([TYPE_AVERAGE, SIX_TYPE_AVERAGE])]
    order: dict[str, tuple[str, ...]] = {}
    for task_type, task in tasks[["task_type", "task"]].drop_duplicates().itertuples(index=False):
        order[task_type] = (*order.get(task_type, ()), task)
    return order


def paper_model(model: str, known: set[str] | list[str]) -> str | None:
    """The paper's model id for our `model` value (Hub id, cache slug or local folder), if any.

    Reports name models by slug, so the slug of each paper model is matched first after the id.
    """
    candidates = {m.lower(): m for m in known}
    name = model.strip().rstrip("/")
    if name.lower() in candidates:
        return candidates[name.lower()]
    slug = {model_slug(m).lower(): m for m in known}
    if name.lower() in slug:
        return slug[name.lower()]
    tail = PurePosixPath(name.replace("\\", "/")).name.lower()
    tails = {PurePosixPath(m).name.lower(): m for m in known}
    return tails.get(tail) or tails.get(tail.split("--")[-1])


def comparable_rows(rows: pd.DataFrame) -> pd.Series:
    """Rows scored in the paper's setting (HS ignores the RW options it records)."""
    ok = pd.Series(True, index=rows.index)
    for column, value in PAPER_SETTING.items():
        same = rows[column] == value
        if column in ("rw", "layers"):
            same |= rows["method"] == HS
        ok &= same
    return ok


def not_comparable(rows: pd.DataFrame) -> list[str]:
    """One line per configuration whose settings differ from the paper's, naming how."""
    out = []
    for record in rows[~comparable_rows(rows)].to_dict("records"):
        diff = ", ".join(
            f"{k}={record[k]} (paper {v})"
            for k, v in PAPER_SETTING.items()
            if record[k] != v and not (record["method"] == HS and k in ("rw", "layers"))
        )
        out.append(f"{record['model']} / {record['prompt']} / {record['method']}: {diff}")
    return list(dict.fromkeys(out))


def compare_with_paper(
    rows: pd.DataFrame, *, paper: pd.DataFrame, row_key: list[str], type_order: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Our scores next to the published ones, for every cell the paper reports for our configs.

    Args:
        rows: resolved test rows (one per row key and task) with `main_score` (0-1).
        paper: `load_paper()`.
        row_key: the columns identifying a table row (model, prompt, method, weight label, ...).
        type_order: task types in display order.

    Returns:
        The comparison (x100) and notes on what could not be compared.
    """
    notes: list[str] = []
    comparable = comparable_rows(rows)
    if (~comparable).any():
        notes.append(f"not comparable: {'; '.join(not_comparable(rows))}")
    published = paper.set_index(["model", "prompt", "method", "task_type", "task"])[
        "score_x100"
    ].sort_index()
    order = paper_task_order(paper)
    models = sorted(paper["model"].unique())
    out: list[dict[str, object]] = []
    unmatched: set[str] = set()
    for key, group in rows[comparable].groupby(  # rows come sorted by the caller
        row_key, sort=False, dropna=False
    ):
        config = dict(zip(row_key, key if isinstance(key, tuple) else (key,), strict=True))
        pmodel = paper_model(str(config["model"]), models)
        paper_key = (pmodel, config["prompt"], config["method"])
        if pmodel is None or (*paper_key, AVERAGE, SIX_TYPE_AVERAGE) not in published.index:
            unmatched.add(f"{config['model']} / {config['prompt']} / {config['method']}")
            continue
        scores = published.loc[paper_key]
        ours = group.set_index("task")["main_score"] * 100
        out.extend(_compare_config(config, ours, scores, order, type_order))
    if unmatched:
        notes.append("no published numbers for: " + "; ".join(sorted(unmatched)))
    return pd.DataFrame(out), notes


def _compare_config(
    config: dict[str, object],
    ours: pd.Series,
    scores: pd.Series,
    order: dict[str, tuple[str, ...]],
    type_order: list[str],
) -> list[dict[str, object]]:
    """The comparison rows of one configuration: six-type average, then each type and its tasks.

    Ours and the paper's same-task means are averaged as every table averages
    (`vocabulary.task_type_means`, `paper_average`), over the paper's tasks we scored.
    """
    types = [t for t in type_order if t in order]
    scored = {t: [task for task in order[t] if task in ours.index] for t in types}
    mine = task_type_means((t, float(ours[task])) for t in types for task in scored[t])
    same = task_type_means((t, float(scores[(t, task)])) for t in types for task in scored[t])
    cells: list[dict[str, object]] = []
    complete = True
    for task_type in types:
        tasks, have = order[task_type], scored[task_type]
        published = float(scores[(task_type, TYPE_AVERAGE)])
        if not have:
            complete = False
            cells.append(
                _cell(config, task_type, TYPE_AVERAGE, np.nan, published, note="not scored")
            )
            continue
        note = ""
        if len(have) < len(tasks):
            complete = False
            missing = ", ".join(t for t in tasks if t not in have)
            note = f"ours over {len(have)}/{len(tasks)} tasks (missing {missing})"
        cells.append(
            _cell(
                config,
                task_type,
                TYPE_AVERAGE,
                mine[task_type],
                published,
                same[task_type] if note else None,
                note,
            )
        )
        cells.extend(
            _cell(config, task_type, t, float(ours[t]), float(scores[(task_type, t)])) for t in have
        )
    published = float(scores[(AVERAGE, SIX_TYPE_AVERAGE)])
    if complete:
        head = _cell(config, AVERAGE, SIX_TYPE_AVERAGE, paper_average(mine), published)
    elif mine:
        note = f"ours over {len(mine)}/{len(order)} types, not all tasks: see the type rows"
        head = _cell(
            config,
            AVERAGE,
            SIX_TYPE_AVERAGE,
            paper_average(mine),
            published,
            paper_average(same),
            note,
        )
    else:
        head = _cell(config, AVERAGE, SIX_TYPE_AVERAGE, np.nan, published, note="not scored")
    return [head, *cells]


def _cell(
    config: dict[str, object],
    task_type: str,
    task: str,
    ours: float,
    paper: float,
    same: float | None = None,
    note: str = "",
) -> dict[str, object]:
    reference = paper if same is None else same
    return {
        **config,
        "task_type": task_type,
        "task": task,
        "ours": ours,
        "paper": paper,
        "paper_same_tasks": np.nan if same is None else same,
        "diff": ours - reference,
        "note": note,
    }
