"""`moee report --plots`: every figure is written as a real PNG of a sensible size."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from moee_pipeline.report.options import ReportOptions
from moee_pipeline.report.plots import make_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASKS = {"STS12": "STS", "STS13": "STS", "EmotionClassification": "Classification"}
TASKS |= {"TwitterURLCorpus": "PairClassification", "SummEval": "Summarization"}


def scores(*, layer_sets: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for layers in layer_sets:
        methods: list[tuple[str, list[float | None]]] = [
            ("HS", [None]), ("RW", [None]), ("MoEE-concat", [None]),
            ("MoEE-sum", [0.5, 1.0, 2.0, 4.0]),
        ]  # fmt: skip
        for method, weights in methods:
            for weight in weights:
                for i, (task, task_type) in enumerate(TASKS.items()):
                    score = 0.4 + 0.05 * i + (0.02 * weight if weight else 0) + 0.01 * len(layers)
                    rows.append(
                        {
                            "model": "allenai/OLMoE-1B-7B-0924",
                            "prompt": "prompteol",
                            "method": method,
                            "weight": weight,
                            "rw": "logits",
                            "zscore": "auto",
                            "pooling": "last",
                            "layers": layers,
                            "task": task,
                            "task_type": task_type,
                            "split": "test",
                            "main_metric": "x",
                            "main_score": score,
                        }
                    )
    return pd.DataFrame(rows)


def check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert 500 <= width <= 4000 and 300 <= height <= 3000, (path.name, width, height)
    assert path.stat().st_size > 15_000  # drawn content, not an empty canvas


def test_all_three_figures(tmp_path: Path) -> None:
    frame = scores(layer_sets=("all", "0-7", "8-15"))
    paths = make_plots(scores=frame, options=ReportOptions(), out_dir=tmp_path / "plots")
    names = sorted(p.name.split("_")[0] for p in paths)
    assert names == ["layers", "methods", "weight"]
    for path in paths:
        assert path.is_file()
        check_png(path)


def test_no_layer_figure_for_one_layer_selection(tmp_path: Path) -> None:
    frame = scores(layer_sets=("all",))
    frame = frame[(frame["method"] != "MoEE-sum") | (frame["weight"] == 1.0)]
    paths = make_plots(scores=frame, options=ReportOptions(), out_dir=tmp_path)
    assert [p.name.split("_")[0] for p in paths] == ["methods"]
    check_png(paths[0])
