"""Stage 1, the local engine: one (task, prompt) through the loaded model into its cache entry.

texts -> prompts -> length-sorted batches -> forward with router hooks -> pooled features
-> parts written in a background thread while the next batches run -> manifest last.
The entry's resume logic, writer and manifest (entries.py) are shared with ray_engine.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from moee_pipeline.cache import layout
from moee_pipeline.extract.batching import Batch, make_batches
from moee_pipeline.extract.entries import (
    TaskPlan,
    abandon,
    entry_lock,
    finish_task,
    keep_stored,
    open_writer,
    plan_task,
)
from moee_pipeline.extract.hooks import PooledBatch, RouterCapture, check_finite, forward_pooled
from moee_pipeline.extract.jobs import EntryJob, side_kwargs
from moee_pipeline.extract.progress import RunBar
from moee_pipeline.extract.runinfo import run_metadata
from moee_pipeline.extract.settings import ExtractionError, ExtractOptions, TaskSummary
from moee_pipeline.extract.writer import PartWriter
from moee_pipeline.models.loading import LoadedModel
from moee_pipeline.prompts import Prompt

logger = logging.getLogger(__name__)


def layer_capture(loaded: LoadedModel, options: ExtractOptions) -> RouterCapture:
    """The hooks a run needs: every router's, and with `--hs-layers all` every decoder layer's."""
    layers = loaded.decoder_layers if options.hs_layers == "all" else ()
    return RouterCapture(loaded.routers, layers)


def forward_resilient(
    loaded: LoadedModel, capture: RouterCapture, batch: Batch
) -> Iterator[tuple[Batch, PooledBatch]]:
    """Forward a batch; on out-of-memory split it in two and retry each half."""
    try:
        yield batch, forward_pooled(loaded, capture, batch.input_ids, batch.attention_mask)
    except torch.OutOfMemoryError:
        if loaded.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(batch.indices) == 1:
            raise ExtractionError(
                f"one text of {batch.input_ids.shape[1]} tokens does not fit in memory: "
                "lower --max-length or use --quantization nf4"
            ) from None
        logger.warning("out of memory on a batch of %d; splitting it", len(batch.indices))
        for half in batch.split():
            yield from forward_resilient(loaded, capture, half)


def extract_task(
    loaded: LoadedModel,
    *,
    task: str,
    texts: Sequence[str],
    prompt: Prompt,
    options: ExtractOptions,
    model_id: str,
    splits: Sequence[str] = (),
    bar: RunBar | None = None,
    job: EntryJob | None = None,
) -> TaskSummary:
    """Extract (or finish extracting) one task's features under one prompt (`job`: one side
    of a retrieval task only, extract/jobs.py).

    `splits` names the evaluation splits `texts` cover; a complete entry made for fewer splits
    (or lacking some of `texts`) is completed with the missing texts, not skipped. One process
    at a time works on an entry (or on one shard of it): a second is refused at once rather
    than doing the work twice. With --overwrite, whatever stops the run leaves the old entry
    as it was. `bar` is the run's progress bar (a run of several pairs shares one); without
    one, the pair draws its own.
    """
    directory = layout.task_dir(options.cache_dir, model=model_id, prompt_id=prompt.id, task=task)
    with entry_lock(directory, shard=options.shard):
        metadata = run_metadata(
            loaded,
            prompt=prompt,
            task=task,
            max_length=options.max_length,
            model_id=model_id,
            hs_layers=options.hs_layers,
        )
        plan = plan_task(
            loaded.tokenizer,
            task=task,
            texts=texts,
            prompt=prompt,
            options=options,
            settings=metadata,
            model_id=model_id,
            splits=splits,
            **side_kwargs(job),
        )
        if isinstance(plan, TaskSummary):
            return plan
        try:
            writer = open_writer(plan, metadata, options=options)
            own = RunBar(enabled=options.progress) if bar is None else contextlib.nullcontext(bar)
            try:
                with own as run:
                    run.begin(f"{task} [{prompt.id}]", len(plan.todo))
                    tokens, timing = _forward_all(loaded, plan, writer, options=options, bar=run)
            finally:
                writer.close()
            summary = finish_task(
                plan,
                metadata,
                options=options,
                new_rows=writer.written,
                tokens=tokens,
                run={"engine": "local", "workers": 1},
                records=writer.records,
                timing=timing,
            )
        except BaseException:  # Ctrl-C, any signal Python turns into an exception, any error
            abandon(plan)
            raise
    return dataclasses.replace(summary, extra={**summary.extra, **timing})


def _forward_all(
    loaded: LoadedModel, plan: TaskPlan, writer: PartWriter, *, options: ExtractOptions, bar: RunBar
) -> tuple[int, dict[str, Any]]:
    """Every text still to do through the model into `writer`: (real tokens, loop timing)."""
    todo = plan.todo
    tokens = padded = 0
    loop_start = time.perf_counter()
    first_forward: float | None = None
    with layer_capture(loaded, options) as capture:
        batches = make_batches(
            plan.encoded,
            pad_id=int(loaded.tokenizer.pad_token_id),
            batch_size=options.batch_size,
            max_batch_tokens=options.max_batch_tokens,
        )
        for batch in batches:
            if first_forward is None:
                first_forward = time.time()
            for part, pooled in forward_resilient(loaded, capture, batch):
                part_texts = [todo[i] for i in part.indices]
                pooled = keep_stored(plan, part_texts, pooled)
                check_finite(pooled, part_texts)
                lengths = part.attention_mask.sum(dim=1).tolist()
                writer.add(part_texts, lengths, part.truncated, pooled)
                tokens += part.real_tokens
                padded += int(part.attention_mask.numel())
                bar.advance(len(part.indices), part.real_tokens)
    timing = {
        "first_forward_at": first_forward,
        "batch_loop_seconds": round(time.perf_counter() - loop_start, 3),
        "padded_tokens": padded,
    }
    return tokens, timing
