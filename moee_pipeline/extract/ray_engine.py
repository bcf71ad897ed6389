"""The Ray engine (`moee extract --engine ray`): forward passes on Ray actors, the cache here.

The driver does what the local engine does before and after the forward passes, with the same
functions (`plan_task`: resume logic and tokenization; `open_writer`/`finish_task`: parts and
manifests). What is left to extract becomes a Ray Data dataset of length-sorted blocks of token
ids; `map_batches` sends them to `FeatureExtractor` actors, each of which loads the model once
(quantization, router hooks and all) and returns pooled features. The driver writes every row
through the same part writer, so the cache's layout, schema and crash safety are the local
engine's, and workers need no access to the cache folder.

A worker that dies is restarted by Ray (the model loads again) and its block retried; a row is
written only when its block comes back, and at most once. A killed driver leaves complete parts
only: a rerun extracts the missing texts.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import reprlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from moee_pipeline.cache import layout, parts
from moee_pipeline.errors import MoeeError
from moee_pipeline.extract.collect import TaskCollection, TaskTexts
from moee_pipeline.extract.entries import (
    TaskPlan,
    abandon,
    entry_lock,
    finish_task,
    keep_stored,
    open_writer,
    plan_task,
)
from moee_pipeline.extract.hooks import PooledBatch, check_finite
from moee_pipeline.extract.jobs import EntryJob, side_kwargs
from moee_pipeline.extract.progress import RunBar
from moee_pipeline.extract.ray_actor import FeatureExtractor, blocks
from moee_pipeline.extract.request import ExtractRequest, RayOptions
from moee_pipeline.extract.reuse import expected_settings
from moee_pipeline.extract.settings import ExtractOptions, TaskSummary, check_max_length
from moee_pipeline.extract.writer import PartWriter
from moee_pipeline.models.loading import load_config, load_tokenizer
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt
from moee_pipeline.ray_cluster import (
    check_address,
    cluster_resources,
    moee_cause,
    ray_session,
    require_ray,
    resolve_gpus_per_worker,
)

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    """The driver's state of one pair while its blocks come back."""

    plan: TaskPlan
    writer: PartWriter | None = None
    metadata: dict[str, Any] | None = None
    tokens: int = 0
    seen: set[int] = field(default_factory=set)  # positions in plan.todo already written

    def remaining(self) -> int:
        return len(self.plan.todo) - len(self.seen)


@dataclass(frozen=True)
class RayEngine:
    """Extracts on a pool of Ray actors, writing the cache on this machine (the driver).

    `extractor` is the actor class (the fault tests substitute one that dies mid-run).
    """

    options: RayOptions = field(default_factory=RayOptions)
    extractor: type[FeatureExtractor] = FeatureExtractor

    def run(self, request: ExtractRequest) -> Iterator[TaskSummary]:
        """Extract every (task, prompt) on the actors; yields a summary per pair.

        Refused before any task loads: Ray missing, an unreachable address, `--shard`.
        """
        require_ray()  # before any task loads or texts are recorded
        check_address(self.options.address)
        options = request.options
        if options.shard != (0, 1):
            raise MoeeError("--shard splits work without Ray; with --engine ray leave it at 0/1")
        with contextlib.ExitStack() as stack:
            collection = stack.enter_context(TaskCollection(request))
            done, todo = collection.split()
            yield from done
            if not todo:
                return
            # one writer per entry, whichever engine: a concurrent run is refused before Ray
            jobs = {item.name: collection.jobs(item) for item in todo}
            for item in todo:
                for job in jobs[item.name]:
                    directory = layout.task_dir(
                        options.cache_dir,
                        model=request.spec.model,
                        prompt_id=job.prompt.id,
                        task=item.name,
                    )
                    stack.enter_context(entry_lock(directory, shard=options.shard))
            ray = stack.enter_context(ray_session(self.options.address))
            gpus = resolve_gpus_per_worker(
                self.options.gpus_per_worker,
                workers=self.options.workers,
                resources=cluster_resources(ray),
            )
            spec = request.spec
            if spec.device == "auto":
                spec = _for_workers(spec, gpus)
            yield from _run(ray, spec, todo, jobs, options, self.options, gpus, self.extractor)


def _for_workers(spec: ModelSpec, gpus: float) -> ModelSpec:
    """The spec as the workers will resolve it, whatever devices the driver itself has.

    The driver checks cached settings (quantization, dtype) before the workers load anything,
    so the device defaults are fixed here from the workers' GPUs, not the driver's.
    """
    if gpus == 0:
        return replace(spec, device="cpu")  # a CPU actor on a GPU node stays off the GPUs
    return replace(spec, quantization=spec.quantization or "nf4", dtype=spec.dtype or "bfloat16")


def _run(
    ray: Any,
    spec: ModelSpec,
    todo: list[TaskTexts],
    jobs: Mapping[str, Sequence[EntryJob]],
    options: ExtractOptions,
    ray_options: RayOptions,
    gpus: float,
    extractor: type[FeatureExtractor],
) -> Iterator[TaskSummary]:
    check_max_length(options.max_length, load_config(spec), model=spec.model)
    tokenizer = load_tokenizer(spec)
    pairs: list[tuple[str, Prompt]] = []
    pending: dict[int, _Pending] = {}
    tables: list[pa.Table] = []
    block_rows = ray_options.block_rows or 4 * options.batch_size
    try:
        for item in todo:
            for job in jobs[item.name]:
                prompt = job.prompt
                plan = plan_task(
                    tokenizer,
                    task=item.name,
                    texts=item.texts,
                    prompt=prompt,
                    options=options,
                    settings=expected_settings(spec, options=options, prompt=prompt),
                    model_id=spec.model,
                    splits=item.splits,
                    **side_kwargs(job),
                )
                if isinstance(plan, TaskSummary):
                    yield plan
                    continue
                key = len(pairs)
                pairs.append((item.name, prompt))
                pending[key] = _Pending(plan)
                tables.extend(blocks(key, plan, block_rows))
    except BaseException:  # a later pair refused: no staged overwrite of an earlier one stays
        for planned in pending.values():
            abandon(planned.plan)
        raise
    run = {"engine": "ray", "workers": ray_options.workers, "gpus_per_worker": gpus}
    for key in [k for k, p in pending.items() if not p.plan.todo]:  # killed after its last part
        yield _finish_from_parts(pending.pop(key), options=options, run=run)
    if not tables:
        return

    # an earlier failed run in this process holds its actors (CPUs, GPUs) until its executor,
    # caught in a reference cycle, is collected: without this a rerun waits for them
    gc.collect()
    context = ray.data.DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, False  # one bar: ours
    dataset = ray.data.from_arrow(tables).map_batches(
        extractor,
        fn_constructor_kwargs={
            "spec": spec,
            "pairs": pairs,
            "model_id": spec.model,
            "max_length": options.max_length,
            "batch_size": options.batch_size,
            "max_batch_tokens": options.max_batch_tokens,
            "hs_layers": options.hs_layers,
        },
        batch_size=None,  # one block = one pair's length-sorted texts
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=ray_options.workers),
        num_gpus=gpus,
        num_cpus=ray_options.cpus_per_worker,
    )
    total = sum(p.remaining() for p in pending.values())
    bar = RunBar(enabled=options.progress, desc="extract [ray]")
    bar.begin(f"{len(pending)} task x prompt pair(s)", total)
    try:
        for out in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for key in np.unique(out["key"]).tolist():
                state = pending.get(key)
                if state is None:  # a block delivered again after its pair was finished
                    continue
                rows = np.flatnonzero(out["key"] == key)
                added = _write_rows(state, out, rows, options=options)
                task, prompt = pairs[key]
                bar.advance(*added, label=f"{task} [{prompt.id}]")
                if state.remaining() == 0:
                    yield _finish(pending.pop(key), options=options, run=run)
    except Exception as error:
        cause = moee_cause(error)
        if cause is not None and cause is not error:
            raise cause from None
        raise
    finally:
        bar.close()
        context.enable_progress_bars = bars
        for state in pending.values():  # a failed run keeps every complete row written in place
            if state.writer is not None:
                state.writer.close()
            abandon(state.plan)  # and no staged overwrite: the entries it would replace stay
    if pending:
        missing = {pairs[k][0]: p.remaining() for k, p in pending.items()}
        raise MoeeError(
            f"Ray returned no features for some texts {reprlib.repr(missing)}; rerun to resume"
        )


def _write_rows(
    state: _Pending, out: dict[str, np.ndarray], rows: np.ndarray, *, options: ExtractOptions
) -> tuple[int, int]:
    """Hand one pair's returned rows to its part writer, each text at most once."""
    if state.writer is None:
        labelled = [str(out["metadata"][r]) for r in rows if out["metadata"][r]]
        if not labelled:
            raise MoeeError("a Ray block came back without its run metadata; this is a bug")
        state.metadata = json.loads(labelled[0])
        state.writer = open_writer(state.plan, state.metadata, options=options)
    fresh = [int(r) for r in rows if int(out["index"][r]) not in state.seen]
    if not fresh:
        return 0, 0
    indices = [int(out["index"][r]) for r in fresh]
    texts = [state.plan.todo[i] for i in indices]
    columns = [name for name in parts.ALL_VECTOR_COLUMNS if name in out]
    pooled = PooledBatch(**{name: np.asarray(out[name][fresh]) for name in columns})
    pooled = keep_stored(state.plan, texts, pooled)
    check_finite(pooled, texts)
    lengths = [int(n) for n in out["n_tokens"][fresh]]
    state.writer.add(texts, lengths, [bool(t) for t in out["truncated"][fresh]], pooled)
    state.seen.update(indices)
    state.tokens += sum(lengths)
    return len(fresh), sum(lengths)


def _finish(state: _Pending, *, options: ExtractOptions, run: dict[str, Any]) -> TaskSummary:
    assert state.writer is not None and state.metadata is not None
    state.writer.close()
    return finish_task(
        state.plan,
        state.metadata,
        options=options,
        new_rows=state.writer.written,
        tokens=state.tokens,
        run=run,
    )


def _finish_from_parts(
    state: _Pending, *, options: ExtractOptions, run: dict[str, Any]
) -> TaskSummary:
    """A pair whose texts are all in complete parts already: only its manifest is missing."""
    metadata = parts.part_metadata(parts.part_files(state.plan.directory)[0])
    return finish_task(state.plan, metadata, options=options, new_rows=0, tokens=0, run=run)
