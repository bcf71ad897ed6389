"""Shared pieces of the benchmarks: the fixed text mix, the random-weight model, measurement.

The text mix is staged from ../shared/mteb-data into a scratch folder outside the repo (the data
is read, never copied into the repository): a fixed, seeded subset of rows of real MTEB tasks, in
their original order, in MTEB's column layout, so `moee extract --data-dir` loads it like any
user's local data.
"""

from __future__ import annotations

import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "mteb-data"

#: The extraction mix: task -> {split: rows kept}. STS pairs give short sentences; the
#: classification tasks give longer tweets/posts plus mteb's few-shot train sample.
EXTRACT_MIX: dict[str, dict[str, int]] = {
    "STS12": {"test": 60},
    "SICK-R": {"test": 60},
    "BIOSSES": {"test": 25},
    "EmotionClassification": {"test": 120, "train": 250},
    "TweetSentimentExtractionClassification": {"test": 100, "train": 250},
}

#: The 11 real tasks of ../shared/mteb-data that are among the paper's 19 (scoring bench).
SCORE_TASKS: tuple[str, ...] = (
    "STS12",
    "STS13",
    "STS14",
    "STS15",
    "STS16",
    "BIOSSES",
    "SICK-R",
    "STSBenchmark",
    "EmotionClassification",
    "TweetSentimentExtractionClassification",
    "SummEval",
)

#: OLMoE-1B-7B's shape scaled down so a CPU pass over the mix takes tens of seconds.
CPU_MODEL: dict[str, Any] = {
    "hidden_size": 512,
    "intermediate_size": 256,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "num_experts": 16,
    "num_experts_per_tok": 4,
    "max_position_embeddings": 4096,
}
VOCAB_SIZE = 32000
SEED = 0


@dataclass(frozen=True)
class Workload:
    """One extraction workload: a random-weight model shape, a text mix and a prompt."""

    name: str
    model: dict[str, Any]
    vocab_size: int
    mix: dict[str, dict[str, int]]
    prompt: str
    about: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


#: The bench's first workload: a mid-size model over ~980 texts with PromptEOL, where the
#: forward pass dominates.
MIX_980 = Workload(
    name="mix-980",
    model=CPU_MODEL,
    vocab_size=VOCAB_SIZE,
    mix=EXTRACT_MIX,
    prompt="prompteol",
    about="hidden 512, 8 layers, 16 experts top-4, vocab 32k; ~980 texts of 5 tasks; prompteol",
)

#: A small model over many texts, where fixed costs (imports, task bookkeeping, model load)
#: show: OLMoE's shape at hidden 256 (expert intermediate half the hidden size, as in OLMoE).
SMALL_3000 = Workload(
    name="small-3000",
    model={
        "hidden_size": 256,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_experts": 16,
        "num_experts_per_tok": 4,
        "max_position_embeddings": 4096,
    },
    vocab_size=4096,
    mix={
        "STSBenchmark": {"test": 500},
        "EmotionClassification": {"test": 300, "train": 2000},
        "TweetSentimentExtractionClassification": {"test": 300, "train": 2000},
    },
    prompt="none",
    about="hidden 256, 4 layers, 16 experts top-4, vocab 4096; ~3,000 texts of 3 tasks; no prompt",
)

WORKLOADS: dict[str, Workload] = {w.name: w for w in (SMALL_3000, MIX_980)}


#: Compute threads of every worker (0: the libraries' default, one per core). One thread by
#: default: on a shared machine, multi-threaded torch under oversubscription spends its time in
#: thread barriers (a batch cost ~10 s whatever its size), which measures the neighbours, not us.
THREADS = {"value": 1}


def offline_env() -> dict[str, str]:
    """The environment every benchmark subprocess runs in: offline, quiet tokenizers, threads."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    if THREADS["value"] > 0:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(THREADS["value"])
    return env


def stage_mix(data_dir: Path, out_dir: Path, mix: dict[str, dict[str, int]]) -> Path:
    """Write a seeded subset of each task's rows (original order kept) to out_dir/<task>/."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    for task, splits in mix.items():
        folder = out_dir / task
        folder.mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            table = pq.read_table(data_dir / task / f"{split}.parquet")
            size = min(rows, table.num_rows)
            keep = np.sort(rng.choice(table.num_rows, size=size, replace=False))
            pq.write_table(table.take(keep), folder / f"{split}.parquet")
    return out_dir


def corpus_texts(data_dir: Path) -> Iterator[str]:
    """Every text of the staged STS/classification files, to train the benchmark tokenizer on."""
    import pyarrow.parquet as pq

    for path in sorted(data_dir.glob("*/*.parquet")):
        if path.parent.name in ("SummEval", "Banking77Classification"):
            continue
        table = pq.read_table(path)
        for column in ("sentence1", "sentence2", "text"):
            if column in table.column_names:
                yield from (t for t in table.column(column).to_pylist() if t)


def build_model(
    data_dir: Path,
    out_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    vocab_size: int = VOCAB_SIZE,
) -> Path:
    """A random-weight OLMoE-like model with a BPE tokenizer trained on the mteb texts."""
    from moee_pipeline.testing.tiny import build_tiny_model, train_tokenizer

    if (out_dir / "model" / "config.json").exists():
        return out_dir / "model"
    tok_dir = out_dir / "tokenizer"
    train_tokenizer(tok_dir, texts=list(corpus_texts(data_dir)), vocab_size=vocab_size)
    return build_tiny_model(
        "olmoe", out_dir / "model", tokenizer_dir=tok_dir, seed=SEED, **(overrides or CPU_MODEL)
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gpu_mb() -> float | None:
    """Peak GPU memory torch allocated in this process (MiB), None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20


@dataclass
class Timer:
    """A wall-clock stopwatch for `with` blocks."""

    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def run_worker(
    module: str, args: Sequence[str], *, timeout: float = 1800, cwd: Path | None = None
) -> dict[str, Any]:
    """Run `python -m module args` in a fresh process; it prints one JSON line last.

    The result gains `spawned_at` (epoch seconds just before the process was started) and
    `process_seconds` (start to exit, as a user waiting for the command sees it). `cwd` runs
    another checkout of the package (see `export_ref`).
    """
    cmd = [sys.executable, "-m", module, *args]
    spawned_at, start = time.time(), time.perf_counter()
    done = subprocess.run(
        cmd, cwd=cwd or REPO, env=offline_env(), capture_output=True, text=True, timeout=timeout
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "spawned_at": spawned_at, "process_seconds": seconds}


def export_ref(ref: str, out_dir: Path) -> Path:
    """The package as of git `ref`, exported (not checked out) to out_dir, with today's benchmarks.

    Running a worker with `cwd=out_dir` imports that version's `moee_pipeline` (the working
    directory comes first on sys.path) and the current benchmark workers.
    """
    import shutil
    import tarfile

    commit = subprocess.run(
        ["git", "rev-parse", ref], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    folder = out_dir / commit[:12]
    if not (folder / "moee_pipeline").is_dir():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "moee_pipeline"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    shutil.rmtree(folder / "benchmarks", ignore_errors=True)
    shutil.copytree(
        REPO / "benchmarks", folder / "benchmarks", ignore=shutil.ignore_patterns("results")
    )
    return folder


def host_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import psutil
    import torch

    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": list(os.getloadavg()),
        "torch": torch.__version__,
    }


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))
