"""The paper's Table 5 from scores.csv: hidden states of the last layer against every layer,
last token against mean pooling, RW of both poolings, and the best MoEE, on STS12-16.

`data/moee_paper_table5.csv` holds the published numbers (DeepSeekMoE-16B, PromptEOL, the mean
over STS12-16, x100). Ours are the same mean over the STS12-16 tasks scored (the STS tasks
scored, when none of those five were), for every (model, prompt, provenance): rows of other
provenance are never averaged together. Only rows in the paper's feature setting count (router
logits, `--zscore auto`, every MoE layer; HS ignores the RW options).

"Best MoEE" is the MoEE-concat or MoEE-sum configuration (any pooling, HS layers and, under the
report's weight rule, weight) with the highest mean on the test scores themselves: it has seen
the test labels, so it is labelled oracle, as the oracle weight is.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from moee_pipeline.cache.scores import PROVENANCE_COLUMNS
from moee_pipeline.report.paper import paper_model
from moee_pipeline.vocabulary import CONCAT, HS, RW, SUM

#: The tasks the paper's Table 5 averages.
TABLE5_TASKS = ("STS12", "STS13", "STS14", "STS15", "STS16")
#: The paper's setting of Table 5 (besides its tasks).
TABLE5_MODEL, TABLE5_PROMPT = "deepseek-ai/deepseek-moe-16b-base", "prompteol"
BEST_MOEE = "MoEE (best)"
#: Table 5's rows: (feature, pooling, HS layers), in the paper's order.
VARIANTS = (
    (HS, "last", "last"),
    (HS, "last", "all"),
    (HS, "mean", "last"),
    (HS, "mean", "all"),
    (RW, "last", "all"),
    (RW, "mean", "all"),
)
POOLING_NAMES = {"last": "last token", "mean": "mean"}
_GROUP = ["model", "prompt", *PROVENANCE_COLUMNS]


def load_paper_table5() -> pd.DataFrame:
    """The published Table 5: model, prompt, feature, pooling, layers, tasks, score_x100."""
    source = resources.files("moee_pipeline.report").joinpath("data/moee_paper_table5.csv")
    with source.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle, keep_default_na=False, dtype={"score_x100": float})


def _in_feature_setting(rows: pd.DataFrame) -> pd.Series:
    rw_ok = (rows["rw"] == "logits") & (rows["layers"] == "all")
    return (rows["zscore"] == "auto") & (rw_ok | (rows["method"] == HS))


def _task_set(group: pd.DataFrame) -> tuple[str, ...]:
    sts = group[group["task_type"] == "STS"]["task"].unique()
    paper = tuple(t for t in TABLE5_TASKS if t in set(sts))
    return paper or tuple(sorted(sts))


def _mean(rows: pd.DataFrame, tasks: tuple[str, ...]) -> tuple[float, int]:
    """Mean x100 over `tasks` of one configuration's rows, and how many of them it covers."""
    scored = rows[rows["task"].isin(tasks)].drop_duplicates("task", keep="last")
    if scored.empty:
        return float("nan"), 0
    return 100 * float(scored["main_score"].mean()), len(scored)


def layer_pooling_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Table 5 as data: per (model, prompt, provenance) and variant, our mean (x100) over the
    task set, how many of its tasks it covers, and for the best MoEE the configuration picked.

    `rows`: the report's resolved rows (one split, a weight label per MoEE-sum row).
    """
    rows = rows[_in_feature_setting(rows)]
    out: list[dict[str, object]] = []
    for key, group in rows.groupby(_GROUP, sort=False, dropna=False):
        tasks = _task_set(group)
        if not tasks:
            continue
        base = dict(zip(_GROUP, key, strict=True))
        for feature, pooling, layers in VARIANTS:
            chosen = group[(group["method"] == feature) & (group["pooling"] == pooling)]
            if feature == HS:
                chosen = chosen[chosen["hs_layers"] == layers]
            score, covered = _mean(chosen, tasks)
            if covered:
                out.append(_row(base, feature, pooling, layers, score, covered, tasks))
        moee = group[group["method"].isin([CONCAT, SUM])]
        config = ["method", "weight_label", "pooling", "hs_layers"]
        candidates = [
            (*_mean(g, tasks), dict(zip(config, k, strict=True)))
            for k, g in moee.groupby(config, sort=False)
        ]
        full = [c for c in candidates if c[1] == max((c[1] for c in candidates), default=0)]
        if full:
            score, covered, picked = max(full, key=lambda c: c[0])
            weight = f" w={picked['weight_label']}" if picked["weight_label"] else ""
            what = f"{picked['method']}{weight}"
            pooled, hs = str(picked["pooling"]), str(picked["hs_layers"])
            row = _row(base, BEST_MOEE, pooled, hs, score, covered, tasks)
            out.append({**row, "picked": what})
    return pd.DataFrame(out)


def _row(
    base: dict[str, object],
    feature: str,
    pooling: str,
    layers: str,
    score: float,
    covered: int,
    tasks: tuple[str, ...],
) -> dict[str, object]:
    return {
        **base,
        "feature": feature,
        "pooling": pooling,
        "layers": layers,
        "score": score,
        "covered": covered,
        "tasks": ",".join(tasks),
        "picked": "",
    }


def paper_setting_problem(row: pd.Series) -> str:
    """Why a Table 5 row is not in the paper's setting ("" when it is)."""
    why = []
    model = paper_model(str(row["model"]), [TABLE5_MODEL])
    if model is None:
        why.append(f"model {row['model']} (paper DeepSeekMoE-16B)")
    if row["prompt"] != TABLE5_PROMPT:
        why.append(f"prompt {row['prompt']} (paper {TABLE5_PROMPT})")
    if row["tasks"] != ",".join(TABLE5_TASKS):
        why.append(f"tasks {row['tasks']} (paper STS12-16)")
    return "; ".join(why)


def compare_table5(ours: pd.DataFrame) -> pd.DataFrame:
    """`layer_pooling_rows` with the published number and the difference beside each row in
    the paper's setting; the others keep their numbers and say how they differ (`note`)."""
    if ours.empty:
        return ours.assign(paper=[], diff=[], note=[])
    paper = load_paper_table5()
    published = {
        (r.feature, r.pooling, r.layers): float(r.score_x100) for r in paper.itertuples(index=False)
    }
    best = {k[1]: v for k, v in published.items() if k[0] == BEST_MOEE}
    values, notes = [], []
    for _, row in ours.iterrows():
        problem = paper_setting_problem(row)
        if row["feature"] == BEST_MOEE:
            value = best.get("last", np.nan)  # the paper's best, whatever its configuration
        else:
            value = published.get((row["feature"], row["pooling"], row["layers"]), np.nan)
        values.append(np.nan if problem else value)
        notes.append(f"not in the paper's setting: {problem}" if problem else "")
    compared = ours.assign(paper=values, note=notes)
    return compared.assign(diff=compared["score"] - compared["paper"])
