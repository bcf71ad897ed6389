"""`make demo` end to end: the whole pipeline offline, showing our own progress and results only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from moee_pipeline.vocabulary import PAPER_AVERAGE_LABEL

#: Bars and chatter of other libraries seen leaking before (mteb's Summarization "Scoring",
#: transformers' loading and saving, datasets' "Map"), and Python warnings.
LIBRARY_OUTPUT = re.compile(
    r"Scoring:|Writing model shards|Loading weights|Map:|Generating \w+ split|Warning:"
)


@pytest.mark.slow
def test_demo_shows_our_progress_and_results_only(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "moee_pipeline.demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr.replace("\r", "\n")
    leaks = sorted({m.group(0) for m in LIBRARY_OUTPUT.finditer(err)})
    assert not leaks, f"library output on stderr: {leaks}"
    bars = {line.split(":")[0] for line in err.splitlines() if line.strip()}
    assert bars == {"extract", "scoring"}  # ours: one bar per stage
    assert "MoeeToySummarization [prompteol]" in err  # the extraction bar names the pair in work
    out = done.stdout
    assert "by storage:" in out  # the weight-memory report, printed once
    assert out.count("by storage:") == 1
    assert PAPER_AVERAGE_LABEL in out and "Demo finished" in out
    assert "\n\n\n\n" not in out  # the tokenizer trainer's empty progress lines
    # the steps of `moee paper`, each printed as the command it is, and what they write
    steps = [line.split()[2] for line in out.splitlines() if line.startswith("$ moee ")]
    assert steps == ["extract", "score", "score", "report", "report", "ls"]
    paper = tmp_path / "demo-output" / "paper"
    report = (paper / "report.md").read_text(encoding="utf-8")
    assert "Table 5" in report and "MoEE-sum" in report
    html = (paper / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(list((paper / "plots").glob("*.png"))) > 0
    assert any(p.name.startswith("hs_layers_") for p in (paper / "plots").glob("*.png"))
