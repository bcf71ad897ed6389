"""scores.csv (`cache/scores.py`): every row is checked as it is read and before it is written.

A file that does not parse row by row (a row cut short by a full disk or a copy that stopped, a
hand edit, a score that is not a number) is refused whole, with one line naming the file and the
line, by `moee score` before it merges into it and by `moee report` before it reads a number.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from moee_pipeline.cache.scores import (
    PROVENANCE_COLUMNS,
    SCORE_COLUMNS,
    ScoresError,
    merge_rows,
    read_rows,
    row_problem,
)


def good_row(**changes: str) -> dict[str, str]:
    """A row as `moee score` writes it (MoEE-sum, so that every column holds a value)."""
    row = {
        "model": "org--m", "prompt": "none", "method": "MoEE-sum", "weight": "0.5",
        "weight_rule": "fixed", "rw": "logits", "zscore": "auto", "pooling": "last",
        "layers": "all", "hs_layers": "last", "task": "STS12", "task_type": "STS",
        "split": "test",
        "main_metric": "cosine_spearman", "main_score": "0.6123456789", "quantization": "nf4",
        "dtype": "bfloat16", "revision": "abc", "max_length": "512", "features": "0123456789",
        "zscore_fit": "split",
    }  # fmt: skip
    return {**row, **changes}


def csv_text(rows: list[dict[str, str]], columns: tuple[str, ...] = SCORE_COLUMNS) -> str:
    """The file as the package's writer (csv.DictWriter) writes it, independently of it."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_a_whole_file_reads_back_as_written(tmp_path: Path) -> None:
    rows = [good_row(), good_row(task="STS13", method="HS", weight="", weight_rule="")]
    path = tmp_path / "scores.csv"
    path.write_text(csv_text(rows), newline="")
    assert read_rows(path) == rows


def test_a_last_row_cut_anywhere_is_refused(tmp_path: Path) -> None:
    """Every cut inside the last row, at every byte up to its line break, is refused (a cut
    between rows leaves whole rows, which are kept)."""
    text = csv_text([good_row(), good_row(task="STS13")])
    last = text.rstrip("\r\n").rsplit("\r\n", 1)[1]
    start = len(text) - len(last) - 2  # the last row begins after the previous line break
    path = tmp_path / "scores.csv"
    for end in range(start + 1, len(text) - 1):
        path.write_text(text[:end], newline="")
        with pytest.raises(ScoresError, match=r"scores\.csv line 3: ") as caught:
            read_rows(path)
        assert "move the file away" in str(caught.value), (end, str(caught.value))
    path.write_text(text[:start], newline="")  # cut between two rows: the first row is whole
    assert read_rows(path) == [good_row()]
    path.write_text(text[:-1], newline="")  # only the "\n" of "\r\n" lost: the row is whole
    assert read_rows(path) == [good_row(), good_row(task="STS13")]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"main_score": "nan"}, "main_score 'nan' is not a number (an older moee-pipeline"),
        ({"main_score": "inf"}, "main_score 'inf' is not a number"),
        ({"main_score": ""}, "main_score '' is not a number"),
        ({"main_score": "0.5x"}, "main_score '0.5x' is not a number (cut short or edited?)"),
        ({"weight": ""}, "weight '' is not a number"),
        ({"weight": "nan"}, "weight 'nan' is not a number"),
        ({"method": "MoEE-s"}, "method 'MoEE-s' is not one of HS, RW, MoEE-concat, MoEE-sum"),
        ({"zscore_fit": "spl"}, "zscore_fit 'spl' is not one of split, task"),
        ({"pooling": "max"}, "pooling 'max' is not one of last, mean"),
        ({"task": ""}, "task is empty"),
    ],
)
def test_a_row_that_is_not_a_score_is_refused_naming_the_line(
    change: dict[str, str], says: str, tmp_path: Path
) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(csv_text([good_row(), good_row(**{"task": "STS13", **change})]), newline="")
    with pytest.raises(ScoresError, match="line 3: ") as caught:
        read_rows(path)
    assert says in str(caught.value)
    assert row_problem(good_row(**change)) is not None
    assert row_problem(good_row()) is None


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("name,value", "is not a moee scores.csv"),
        (",".join([*SCORE_COLUMNS, "extra"]), "unknown column(s) extra"),
        (",".join([*SCORE_COLUMNS, "task"]), "task twice"),
    ],
)
def test_a_header_that_is_not_ours_is_refused(header: str, says: str, tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(header + "\n")
    with pytest.raises(ScoresError, match="move it away or choose another --output") as caught:
        read_rows(path)
    assert says in str(caught.value)


def test_files_before_the_provenance_columns_still_read(tmp_path: Path) -> None:
    old = tuple(  # no weight_rule, no hs_layers, no provenance
        c for c in SCORE_COLUMNS if c not in ("weight_rule", "hs_layers", *PROVENANCE_COLUMNS)
    )
    row = good_row(method="RW", weight="")
    path = tmp_path / "scores.csv"
    path.write_text(csv_text([row], old), newline="")
    assert read_rows(path) == [{c: row[c] for c in old}]


def test_merge_refuses_a_damaged_file_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    damaged = csv_text([good_row()])[:-30].encode()
    path.write_bytes(damaged)
    with pytest.raises(ScoresError, match="fields, not the header's 21"):
        merge_rows(path, [good_row(task="STS13")])
    assert path.read_bytes() == damaged  # nothing merged, nothing lost


def test_merge_never_writes_a_score_that_is_not_a_number(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    merge_rows(path, [good_row()])
    before = path.read_bytes()
    with pytest.raises(ScoresError, match=r"not writing a row of STS13 .*'nan' is not a number"):
        merge_rows(path, [good_row(task="STS13"), good_row(task="STS13", main_score="nan")])
    assert path.read_bytes() == before
