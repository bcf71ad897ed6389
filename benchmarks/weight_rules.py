"""MoEE-sum's weight rules on real MTEB tasks: auto weights and oracle/validation/auto gaps.

This checks the mechanics on real data (which texts, which pairs, which splits), not the paper's
numbers: the features come from a tiny random MoE model extracted on the CPU.

    .venv/bin/python -m benchmarks.weight_rules --data-dir ../shared/mteb-data --out bench-rules

Writes `<out>/results/scores.csv`, `<out>/results/mteb/` and `<out>/weight_rules.md` (the report's
side-by-side table plus the auto weights per task and split).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from moee_pipeline.cli import main as cli
from moee_pipeline.report import tables as report
from moee_pipeline.report import weight_rules
from moee_pipeline.report.render import build_report, markdown_table
from moee_pipeline.testing.tiny import build_tiny_model, train_tokenizer

logger = logging.getLogger(__name__)

TASKS = ("STSBenchmark", "EmotionClassification", "BIOSSES", "SICK-R", "SummEval")
WEIGHTS = ("0.1", "0.3", "1", "3", "10")


def _moee(*args: str) -> None:
    logger.info("$ moee %s", " ".join(args))
    cli.main(args=list(args), prog_name="moee", standalone_mode=False)


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-weight-rules"))
@click.option("--tasks", default=",".join(TASKS), show_default=True)
def main(data_dir: Path, out: Path, tasks: str) -> None:
    """Extract a tiny random model, score every weight rule, and write the comparison."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    model = out / "tiny-olmoe"
    if not (model / "config.json").is_file():
        train_tokenizer(out / "tokenizer")
        build_tiny_model("olmoe", model, tokenizer_dir=out / "tokenizer")
    cache, results = out / "cache", out / "results"
    common = ["--model", str(model), "--cache-dir", str(cache), "--tasks", tasks]
    _moee("extract", *common, "--data-dir", str(data_dir), "--splits", "test,validation")
    weights = [x for w in WEIGHTS for x in ("--weight", w)]
    _moee(
        "score", *common, "--method", "MoEE-sum", *weights, "--weight", "auto",
        "--split", "test", "--split", "validation", "--output", str(results),
    )  # fmt: skip
    scores = report.load_scores(results)
    text = build_report(
        scores=scores,
        options=weight_rules.ReportOptions(weight_rule="auto"),
        fmt="markdown",
        compare_paper=False,
    )
    marker = "## MoEE-sum weight rules side by side"
    side = marker + text.split(marker)[1].split("\n## ")[0]
    frame = weight_rules.rules_side_by_side(scores)
    gaps = [
        f"- mean over {frame[[a, b]].dropna().shape[0]} tasks of {a} - {b}: "
        f"{(frame[a] - frame[b]).mean():+.2f} points (x100)"
        for a, b in (("oracle", "auto"), ("oracle", "validation"), ("validation", "auto"))
        if a in frame and b in frame
    ]
    auto = scores[scores["weight_rule"] == "auto"].sort_values(["task", "split"])
    rows = [
        [t, s, f"{w:.4g}", f"{100 * m:.2f}"]
        for t, s, w, m in auto[["task", "split", "weight", "main_score"]].itertuples(index=False)
    ]
    lines = [
        f"# MoEE-sum weight rules on {tasks} (tiny random OLMoE, CPU)",
        "",
        side,
        "",
        *gaps,
        "",
        "## Auto weights per task and split",
        "",
        markdown_table(["task", "split", "auto weight", "score (x100)"], rows, {2, 3}),
        "",
        f"total time: {time.perf_counter() - started:.0f} s",
    ]
    (out / "weight_rules.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
