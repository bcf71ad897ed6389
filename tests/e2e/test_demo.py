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
    assert "scoring" in bars and "MoeeToySummarization [prompteol]" in bars  # ours
    assert bars <= {"scoring", *(f"{t} [{p}]" for t in _toy_tasks() for p in ("none", "prompteol"))}
    out = done.stdout
    assert "by storage:" in out  # the weight-memory report, printed once
    assert out.count("by storage:") == 1
    assert PAPER_AVERAGE_LABEL in out and "Demo finished" in out
    assert "\n\n\n\n" not in out  # the tokenizer trainer's empty progress lines


def _toy_tasks() -> tuple[str, ...]:
    from moee_pipeline.demo import TOY_TASKS

    return TOY_TASKS
