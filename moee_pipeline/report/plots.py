"""`moee report --plots DIR`: the figures a researcher looks at instead of reading scores.csv.

1. `weight_sweep_*.png`: MoEE-sum score against its RW weight, one panel per task type (and the
   six-type average), HS and RW of the same configuration as horizontal references.
2. `methods_*.png`: HS, RW, MoEE-concat and MoEE-sum side by side per task type.
3. `layers_*.png`: score against the `--layers` selection, when several were scored.
4. `hs_layers_*.png`: HS score against the decoder layer its hidden state comes from (each
   layer alone, `moee score --hs-layers 0 --hs-layers 1 ...`), per task type, RW as reference.

Figures 1-3 show the last layer's HS (`--hs-layers last`), as the paper's figures do.

One figure per (model, prompt, rw, zscore, pooling) setting; scores x100 on the test split. Task
types averaging fewer tasks than they should are marked with a dagger, as in the tables.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from moee_pipeline.cache import files
from moee_pipeline.report import tables as report
from moee_pipeline.report import weight_rules
from moee_pipeline.report.options import ReportOptions
from moee_pipeline.report.paper import AVERAGE
from moee_pipeline.vocabulary import AUTO, FIXED, HS, METHODS, RW, SUM, TASK_TYPES

logger = logging.getLogger(__name__)

FIGURE_KEY = ["model", "prompt", "rw", "zscore", "pooling"]
HS_LAST = "last"
_STYLE = {HS: ("tab:gray", "--"), RW: ("tab:orange", ":")}


def _slug(values: tuple[str, ...]) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(str(v) for v in values)).strip("_")


def _title(key: tuple[str, ...]) -> str:
    model, prompt, rw, zscore, pooling = key
    return f"{model} · prompt={prompt} · rw={rw}, zscore={zscore}, pooling={pooling}"


def _type_means(rows: pd.DataFrame, by: str, types: list[str]) -> pd.DataFrame:
    """Mean x100 per task type (columns) for each `by` value (rows), plus the paper's Average,
    as the tables compute them (`tables.type_means`)."""
    means = pd.DataFrame.from_dict(
        {value: report.type_means(group) for value, group in rows.groupby(by)}, orient="index"
    )
    present = [t for t in types if t in means.columns]
    return means.reindex(columns=[*present, AVERAGE])


def _type_labels(rows: pd.DataFrame, types: list[str]) -> dict[str, str]:
    """Task type -> axis label, with a dagger and k/n when the type is incomplete."""
    expected = report.expected_tasks(rows)
    labels = {}
    for task_type in types:
        have = rows.loc[rows["task_type"] == task_type, "task"].nunique()
        full = len(expected.get(task_type, ()))
        mark = f"{report.DAGGER} ({have}/{full})" if have < full else ""
        labels[task_type] = f"{task_type}{mark}"
    scored = sum(t in set(rows["task_type"]) for t in TASK_TYPES)
    incomplete = any(labels[t] != t for t in types) or scored < len(TASK_TYPES)
    labels[AVERAGE] = f"{AVERAGE}{report.DAGGER}" if incomplete else AVERAGE
    return labels


def _save(fig: plt.Figure, path: Path) -> Path:
    """Written like every file the package stores: a full disk leaves the old figure or none."""
    try:
        with files.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    logger.info("wrote %s", path)
    return path


def weight_sweep(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Figure 1 for every setting whose MoEE-sum was scored at two or more weights."""
    paths = []
    types = report.type_order(rows)
    for key, group in rows[rows["layers"] == "all"].groupby(FIGURE_KEY, sort=False):
        sums = group[(group["method"] == SUM) & (group["basis"] == FIXED)]
        if sums["weight"].nunique() < 2:
            continue
        curves = _type_means(sums, "weight", types)
        refs = _type_means(group[group["method"].isin([HS, RW])], "method", types)
        labels = _type_labels(group, list(curves.columns[:-1]))
        panels = list(curves.columns)
        ncols = min(4, len(panels))
        nrows = int(np.ceil(len(panels) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False)
        weights = curves.index.to_numpy(dtype=float)
        for ax, panel in zip(axes.flat, panels, strict=False):
            ax.plot(weights, curves[panel], marker="o", color="tab:blue", label=SUM)
            for method in (HS, RW):
                if method in refs.index and not np.isnan(refs.loc[method, panel]):
                    color, style = _STYLE[method]
                    ax.axhline(refs.loc[method, panel], color=color, ls=style, label=method)
            ax.set_title(labels[panel], fontsize=10)
            ax.set_xlabel("RW weight w")
            ax.set_ylabel("main score (x100)")
            if weights.min() > 0 and weights.max() / weights.min() > 20:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        handles, names = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.04))
        fig.suptitle(f"{SUM} score vs RW weight\n{_title(key)}", fontsize=11)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        paths.append(_save(fig, out_dir / f"weight_sweep_{_slug(key)}.png"))
    return paths


def methods(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Figure 2: grouped bars, one group per task type, one bar per method (all MoE layers)."""
    paths = []
    types = report.type_order(rows)
    for key, group in rows[rows["layers"] == "all"].groupby(FIGURE_KEY, sort=False):
        group = group.assign(series=_series_names(group))
        means = _type_means(group, "series", types)
        order = [s for s in _series_order(group) if s in means.index]
        means = means.reindex(order)
        labels = _type_labels(group, list(means.columns[:-1]))
        x = np.arange(len(means.columns))
        width = 0.8 / max(len(order), 1)
        fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(x) + 2), 4.5))
        for i, series in enumerate(order):
            bars = ax.bar(
                x + (i - (len(order) - 1) / 2) * width, means.loc[series], width, label=series
            )
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
        ax.set_xticks(x, [labels[c] for c in means.columns], rotation=20, ha="right")
        ax.set_ylabel("main score (x100)")
        ax.set_title(f"Methods per task type\n{_title(key)}", fontsize=11)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, max(100.0, float(np.nanmax(means.to_numpy())) * 1.1))
        fig.tight_layout()
        paths.append(_save(fig, out_dir / f"methods_{_slug(key)}.png"))
    return paths


def _series_names(group: pd.DataFrame) -> list[str]:
    """Legend names: the method, and for MoEE-sum its weight or how the weight was picked."""
    names = []
    for method, label in zip(group["method"], group["weight_label"], strict=True):
        if method != SUM:
            names.append(method)
        elif label.startswith("best"):
            names.append(f"{SUM}, {label.replace('best', 'best w', 1)}")
        elif label == AUTO:
            names.append(f"{SUM}, {AUTO} w")
        else:
            names.append(f"{SUM}, w={label}")
    return names


def _series_order(group: pd.DataFrame) -> list[str]:
    rank = {m: i for i, m in enumerate(METHODS)}
    pairs = sorted(
        zip(group["method"], _series_names(group), strict=True), key=lambda p: rank.get(p[0], 9)
    )
    return list(dict.fromkeys(name for _, name in pairs))


def _layer_sort_key(label: str) -> tuple[int, int, str]:
    if label == "all":
        return (10**6, 10**6, label)
    numbers = [int(n) for n in re.findall(r"\d+", label)]
    return (numbers[0], numbers[-1], label) if numbers else (10**6, 0, label)


def layer_ranges(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Figure 3: score against the layer selection, one panel per RW-using method."""
    paths = []
    types = report.type_order(rows)
    for key, group in rows.groupby(FIGURE_KEY, sort=False):
        uses_rw = group[group["method"] != HS]
        if uses_rw["layers"].nunique() < 2:
            continue
        group = group.assign(series=_series_names(group))
        series = [s for s in _series_order(group) if s != HS]
        layers = sorted(uses_rw["layers"].unique(), key=_layer_sort_key)
        fig, axes = plt.subplots(1, len(series), figsize=(4.6 * len(series), 4.0), squeeze=False)
        hs_rows = group[group["method"] == HS]
        if (hs_rows["layers"] == "all").any():
            hs_rows = hs_rows[hs_rows["layers"] == "all"]
        hs = _type_means(hs_rows, "method", types)
        for ax, name in zip(axes.flat, series, strict=True):
            means = _type_means(group[group["series"] == name], "layers", types).reindex(layers)
            labels = _type_labels(group[group["series"] == name], list(means.columns[:-1]))
            for column in means.columns:
                bold = column == AVERAGE
                ax.plot(
                    range(len(layers)),
                    means[column],
                    marker="o",
                    lw=2.5 if bold else 1.2,
                    color="black" if bold else None,
                    label=labels[column],
                )
            if HS in hs.index:
                ax.axhline(hs.loc[HS, AVERAGE], color="tab:gray", ls="--", label=f"{HS} (Average)")
            ax.set_xticks(range(len(layers)), layers, rotation=30, ha="right")
            ax.set_xlabel("MoE layers used (positions)")
            ax.set_ylabel("main score (x100)")
            ax.set_title(name, fontsize=10)
            ax.grid(alpha=0.3)
        axes.flat[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.suptitle(f"Score vs layer range\n{_title(key)}", fontsize=11)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / f"layers_{_slug(key)}.png"))
    return paths


def hs_layer_curves(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Figure 4: HS score against the decoder layer it is taken from (each layer alone), one
    line per task type and the Average, with RW's score per type as a dotted reference line."""
    paths = []
    types = report.type_order(rows)
    for key, group in rows.groupby(FIGURE_KEY, sort=False):
        single = group[(group["method"] == HS) & group["hs_layers"].str.fullmatch(r"\d+")]
        if single["hs_layers"].nunique() < 2:
            continue
        single = single.assign(layer=single["hs_layers"].astype(int))
        curves = _type_means(single, "layer", types).sort_index()
        rw = group[(group["method"] == RW) & (group["layers"] == "all")]
        refs = _type_means(rw, "method", types)
        labels = _type_labels(single, list(curves.columns[:-1]))
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, column in enumerate(curves.columns):
            bold = column == AVERAGE
            color = "black" if bold else colors[i % len(colors)]
            ax.plot(
                curves.index, curves[column], marker="o", lw=2.5 if bold else 1.2, color=color,
                label=labels[column],
            )  # fmt: skip
            if RW in refs.index and column in refs.columns and not np.isnan(refs.loc[RW, column]):
                ax.axhline(refs.loc[RW, column], color=color, ls=":", lw=1.0)
        if RW in refs.index:
            ax.plot([], [], color="gray", ls=":", label=f"{RW} (all MoE layers), same colour")
        ax.set_xticks(curves.index)
        ax.set_xlabel("decoder layer of the hidden state (position, 0 = first)")
        ax.set_ylabel("main score (x100)")
        ax.set_title(f"{HS} score vs layer\n{_title(key)}", fontsize=11)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / f"hs_layers_{_slug(key)}.png"))
    return paths


def make_plots(*, scores: pd.DataFrame, options: ReportOptions, out_dir: Path) -> list[Path]:
    """Write every figure the scores allow; returns their paths.

    Figure 1 always shows every scored fixed weight; figures 2-3 show MoEE-sum as the options
    say (the named weight, the auto rule, the validation pick, the oracle only under
    `select_on=split` and labelled so; without a rule, every weight as its own series).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    every = weight_rules.resolve_weights(scores, options=ReportOptions(split=options.split))
    single = weight_rules.resolve_weights(scores, options=options)
    last = single["hs_layers"] == HS_LAST  # figures 1-3: the last layer's HS, as the paper's
    return [
        *weight_sweep(every[every["hs_layers"] == HS_LAST], out_dir),
        *methods(single[last], out_dir),
        *layer_ranges(single[last], out_dir),
        *hs_layer_curves(single, out_dir),
    ]
