"""Texts another task's entry already holds: copied, not computed again.

Two tasks that share a corpus (BEIR variants, a benchmark's retrieval tasks over one
collection) would otherwise run every shared document through the model twice. A row's
features depend only on the text and the run's settings (model, revision, prompt template,
max length, quantization, dtype), never on the task, so a complete entry of the same model
and prompt made with the same settings can give its rows: they are copied into this entry's
own part files (each entry stays self-contained, and deleting one never damages another).
The cost is disk: each copied row is stored again (SciFact's 5,183 documents at OLMoE's
widths, 2 x 1,024 router logits and 2 x 2,048 hidden values of float32, about 127 MB).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from moee_pipeline.cache import layout, parts, store
from moee_pipeline.cache.errors import FileProblem
from moee_pipeline.extract.reuse import check_same_settings
from moee_pipeline.extract.settings import ExtractionError

logger = logging.getLogger(__name__)

#: (a complete sibling entry's folder, the text ids of ours it holds)
Source = tuple[Path, set[str]]


def shared_sources(
    cache_dir: Path, key: layout.EntryKey, settings: dict[str, Any], wanted: set[str]
) -> list[Source]:
    """Complete entries of the same model and prompt (other tasks, same settings) holding some
    of `wanted`, each text taken from the first entry (in layout order) that holds it.

    An entry that cannot be read, is incomplete or was made with other settings is passed
    over: the texts are then simply extracted.
    """
    found: list[Source] = []
    left = set(wanted)
    for other, folder in layout.iter_entries(cache_dir):
        if not left:
            break
        if (other.model_slug, other.prompt_id) != (key.model_slug, key.prompt_id):
            continue
        if other.task == key.task:
            continue
        manifest = store.read_manifest(folder)
        if manifest is None:
            continue
        try:
            check_same_settings(manifest, settings, where=folder)
            held = store.existing_text_ids(folder) & left
        except (ExtractionError, FileProblem) as error:
            logger.info("not copying from %s: %s", folder, error)
            continue
        if held:
            found.append((folder, held))
            left -= held
    return found


def copy_shared_rows(
    sources: Sequence[Source],
    directory: Path,
    *,
    task: str,
    texts_in_task: int,
    prefix: str,
    first: int,
    rows_per_part: int,
) -> tuple[int, int]:
    """Write the sources' rows of our texts as this entry's parts, numbered from `first`,
    under this task's name in their metadata: (rows copied, the next part number)."""
    copied, number = 0, first
    for folder, ids in sources:
        wanted = pa.array(sorted(ids), pa.string())
        for part in parts.part_files(folder):
            table = pq.read_table(part)
            rows = table.filter(pc.is_in(table.column("text_id"), value_set=wanted))
            if not rows.num_rows:
                continue
            meta = {**parts.schema_metadata(table.schema), "task": task}
            meta["texts_in_task"] = texts_in_task
            schema = table.schema.with_metadata(
                {parts.METADATA_KEY: json.dumps(meta, sort_keys=True)}
            )
            rows = rows.replace_schema_metadata(schema.metadata).combine_chunks()
            for start in range(0, rows.num_rows, rows_per_part):
                path = directory / f"{prefix}-{number:05d}.parquet"
                parts.write_part(rows.slice(start, rows_per_part), path)
                number += 1
            copied += rows.num_rows
        logger.info("%s: copied %d row(s) from %s", task, len(ids), folder)
    return copied, number
