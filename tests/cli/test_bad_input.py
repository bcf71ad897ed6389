"""The bad-input catalogue: each case is one clear error line, no traceback, nothing cached lost
and nothing left behind (no folder, lock, temp or snapshot the refused run made).

The README's troubleshooting table is built from `CASES` (`troubleshooting_table()`), and a test
checks that the README holds it verbatim, so the two cannot drift. To refresh the README:
`.venv/bin/python -c "from tests.cli.test_bad_input import troubleshooting_table as t; print(t())"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from moee_pipeline.cache import layout, parts, store
from moee_pipeline.cache.scores import SCORE_COLUMNS
from moee_pipeline.cli import main
from tests.support.paths import README

TASK = "MoeeToySTS"


@dataclass(frozen=True)
class Context:
    """What a case builds its command from: the tiny model, a private cache copy, a scratch dir."""

    model: Path
    cache: Path
    tmp: Path

    @property
    def entry(self) -> Path:
        return layout.task_dir(self.cache, model=str(self.model), prompt_id="none", task=TASK)

    def extract(self, *args: str) -> list[str]:
        return ["extract", "--model", str(self.model), "--cache-dir", str(self.cache), *args]

    def score(self, *args: str) -> list[str]:
        out = str(self.tmp / "results")
        base = ["score", "--model", str(self.model), "--cache-dir", str(self.cache)]
        return [*base, "--output", out, "--method", "RW", *args]

    def data(self, sentences: list[str | None] | None = None, **columns: object) -> Path:
        """A data dir holding BIOSSES/test.parquet with these rows (MTEB's STS columns)."""
        folder = self.tmp / "data" / "BIOSSES"
        folder.mkdir(parents=True, exist_ok=True)
        if sentences is not None:
            columns = {
                "sentence1": sentences,
                "sentence2": list(reversed(sentences)),
                "score": [float(i % 5) for i in range(len(sentences))],
            }
        pq.write_table(pa.table(columns), folder / "test.parquet")
        return folder.parent

    def retrieval(self, **flaws: Mapping[str, Sequence[object]]) -> list[str]:
        """`moee extract` of SciFact from a data dir of two documents and two queries (one
        relevant document each), with `flaws` replacing whole parts: {part: {column: values}}."""
        good: dict[str, Mapping[str, Sequence[object]]] = {
            "corpus": {"id": ["d1", "d2"], "title": ["T", ""], "text": ["one", "two"]},
            "queries": {"id": ["q1", "q2"], "text": ["first?", "second?"]},
            "qrels": {"query-id": ["q1", "q2"], "corpus-id": ["d1", "d2"], "score": [1, 1]},
        }
        root = self.tmp / "retrieval"
        for part, columns in {**good, **flaws}.items():
            folder = root / "SciFact" / part
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(dict(columns)), folder / "test.parquet")
        return self.extract("--tasks", "SciFact", "--data-dir", str(root))


#: Flawed parts of a retrieval data dir (`Context.retrieval`): {column: values}.
_Part = dict[str, list[object]]
_CORPUS = {"id": ["d1", "d1"], "title": ["T", ""], "text": ["one", "two"]}
_QRELS_NO_DOC: _Part = {"query-id": ["q1"], "corpus-id": ["d9"], "score": [1]}
_QRELS_NO_QUERY: _Part = {"query-id": ["q7"], "corpus-id": ["d1"], "score": [1]}
_QRELS_TEXT_SCORE: _Part = {"query-id": ["q1"], "corpus-id": ["d1"], "score": ["high"]}


@dataclass(frozen=True)
class Case:
    """One bad input: how to cause it, what the one error line says, what the user should do."""

    what: str
    message: str
    fix: str
    command: Callable[[Context], list[str]]


def _dense_model(ctx: Context) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2,
    )  # fmt: skip
    folder = ctx.tmp / "dense"
    LlamaForCausalLM(config).save_pretrained(folder)
    shutil.copy(ctx.model / "tokenizer.json", folder / "tokenizer.json")
    return folder


def _edit_manifest(ctx: Context, **changes: object) -> None:
    path = ctx.entry / store.MANIFEST
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _drop_column(ctx: Context) -> None:
    """Rewrite a part without rw_last, recorded as if written so: only the schema is wrong."""
    part = ctx.entry / "part-00000.parquet"
    table = pq.read_table(part)
    record = parts.write_part(table.drop_columns(["rw_last"]), part)
    manifest = json.loads((ctx.entry / store.MANIFEST).read_text())
    manifest["parts"][part.name] = record
    (ctx.entry / store.MANIFEST).write_text(json.dumps(manifest))


def _flip_byte(ctx: Context) -> None:
    part = ctx.entry / "part-00001.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 3] ^= 0x01
    part.write_bytes(bytes(data))


def _move_entry(ctx: Context) -> None:
    other = layout.task_dir(ctx.cache, model="org/other", prompt_id="none", task=TASK)
    other.parent.mkdir(parents=True)
    ctx.entry.rename(other)


def _truncate_snapshot(ctx: Context) -> None:
    data = sorted((ctx.cache / "tasks" / TASK / "data").rglob("*.parquet"))[0]
    data.write_bytes(data.read_bytes()[:100])


def _then(
    setup: Callable[[Context], object], command: Callable[[Context], list[str]]
) -> Callable[[Context], list[str]]:
    def run(ctx: Context) -> list[str]:
        setup(ctx)
        return command(ctx)

    return run


def _file(ctx: Context, name: str) -> str:
    (ctx.tmp / name).write_text("not a folder\n")
    return str(ctx.tmp / name)


def _missing_split(ctx: Context) -> list[str]:
    data = ctx.data(["a b", "c d"])
    (data / "BIOSSES" / "test.parquet").rename(data / "BIOSSES" / "train.parquet")
    return ctx.extract("--tasks", "BIOSSES", "--data-dir", str(data))


def _not_parquet(ctx: Context) -> list[str]:
    data = ctx.data(["a b"])
    (data / "BIOSSES" / "test.parquet").write_text("sentence1,sentence2,score\na,b,1\n")
    return ctx.extract("--tasks", "BIOSSES", "--data-dir", str(data))


def _looped_split(ctx: Context) -> list[str]:
    data = ctx.data(["a b", "c d"])
    split = data / "BIOSSES" / "test.parquet"
    split.unlink()
    split.symlink_to(split)  # a link to itself: opening it fails with ELOOP
    return ctx.extract("--tasks", "BIOSSES", "--data-dir", str(data))


def _integer_texts(ctx: Context) -> list[str]:
    data = ctx.data(sentence1=[1, 2, 3], sentence2=["a b", "c d", "e f"], score=[1.0, 2.0, 3.0])
    return ctx.extract("--tasks", "BIOSSES", "--data-dir", str(data))


def _damaged_model(name: str, damage: Callable[[Path], object]) -> Callable[[Context], list[str]]:
    """Extract with a copy of the tiny model, damaged by `damage`, in a folder of its own."""

    def run(ctx: Context) -> list[str]:
        folder = ctx.tmp / name
        shutil.copytree(ctx.model, folder)
        damage(folder)
        return ctx.extract("--tasks", TASK, "--model", str(folder))

    return run


def _cut_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return edit


def _remove(*names: str) -> Callable[[Path], None]:
    def remove(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()

    return remove


def _lost_shard(folder: Path) -> None:
    """Split the weights into two shards with their index, as save_pretrained would; lose one."""
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    names = sorted(weights)
    shards = {
        "model-00001-of-00002.safetensors": names[:5],
        "model-00002-of-00002.safetensors": names[5:],
    }
    for shard, keys in shards.items():
        save_file({k: weights[k] for k in keys}, folder / shard, metadata={"format": "pt"})
    index = {
        "metadata": {},
        "weight_map": {k: shard for shard, keys in shards.items() for k in keys},
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "model.safetensors").unlink()
    (folder / "model-00002-of-00002.safetensors").unlink()


def _manifest_folder(ctx: Context) -> None:
    (ctx.entry / store.MANIFEST).unlink()
    (ctx.entry / store.MANIFEST).mkdir()


def _entry_of(ctx: Context, model: str) -> Path:
    """The toy entry copied under `model`'s slug, its manifest naming `model`."""
    target = layout.task_dir(ctx.cache, model=model, prompt_id="none", task=TASK)
    shutil.copytree(ctx.entry, target)
    _edit_manifest_at(target, model=model)
    return target


def _edit_manifest_at(folder: Path, **changes: object) -> None:
    path = folder / store.MANIFEST
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _namesakes(ctx: Context) -> list[str]:
    """`tiny olmoe ü` extracted (its entry, as extraction names it); score `tiny olmoe ö`."""
    for name in ("tiny olmoe ü", "tiny olmoe ö"):
        shutil.copytree(ctx.model, ctx.tmp / name)
    _entry_of(ctx, str(ctx.tmp / "tiny olmoe ü"))
    return ctx.score("--model", str(ctx.tmp / "tiny olmoe ö"))


def _hub_id_meets_folder(ctx: Context) -> list[str]:
    """A local folder `org--tiny` extracted; score the Hub id `org/tiny`, which slugs alike."""
    _entry_of(ctx, str(ctx.tmp / "models" / "org--tiny"))
    return ctx.score("--model", "org/tiny")


def _other_snapshot_data(ctx: Context) -> list[str]:
    """A BIOSSES snapshot of 3 rows in the cache; a data dir holding 4 other rows."""
    from moee_pipeline.tasks import load_task, write_snapshot

    old = ctx.data(["one two", "three four", "five six"])
    write_snapshot(load_task("BIOSSES", data_dir=old), cache_dir=ctx.cache)
    new = ctx.data(["a b", "c d", "e f", "g h"])
    return ctx.extract("--tasks", "BIOSSES", "--data-dir", str(new))


def _texts_changed(ctx: Context) -> None:
    """The task's recorded texts no longer hold one text of its entry (its data changed)."""
    path = ctx.cache / "tasks" / TASK / "encoded" / "test.parquet"
    table = pq.read_table(path)
    texts = table.column("text").to_pylist()
    texts[0] = "a sentence the entry was never given."
    changed = pa.table({"text": pa.array(texts, pa.string())})
    pq.write_table(changed.replace_schema_metadata(table.schema.metadata), path)


def _foreign_scores(ctx: Context) -> None:
    (ctx.tmp / "results").mkdir()
    (ctx.tmp / "results" / "scores.csv").write_text("name,value\nx,1\n")


def _scores_file(ctx: Context, *, main_score: str = "0.5", cut: int = 0) -> None:
    """results/scores.csv with two rows (the last one's score given, `cut` bytes cut off)."""
    row = {"model": "m", "prompt": "none", "method": "RW", "rw": "logits", "zscore": "auto",
           "pooling": "last", "layers": "all", "task": TASK, "task_type": "STS", "split": "test",
           "main_metric": "cosine_spearman", "zscore_fit": "split"}  # fmt: skip
    lines = [",".join(SCORE_COLUMNS)]
    for score in ("0.4", main_score):
        lines.append(",".join({**row, "main_score": score}.get(c, "") for c in SCORE_COLUMNS))
    (ctx.tmp / "results").mkdir()
    text = "\r\n".join(lines) + "\r\n"
    (ctx.tmp / "results" / "scores.csv").write_text(text[: len(text) - cut], newline="")


def _report(ctx: Context) -> list[str]:
    return ["report", "--results", str(ctx.tmp / "results")]


def _constant_gold(ctx: Context) -> None:
    """BIOSSES extracted from data whose gold scores are all 2.5: Spearman is undefined."""
    sentences = [f"cell line {i} grew" for i in range(12)]
    data = ctx.data(sentence1=sentences, sentence2=sentences[::-1], score=[2.5] * 12)
    args = ctx.extract("--tasks", "BIOSSES", "--data-dir", str(data))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


CASES: list[Case] = [
    Case(
        "unknown task",
        "unknown task",
        "check the name; `moee extract --help`",
        lambda c: c.extract("--tasks", "NoSuchTask"),
    ),
    Case(
        "unknown task type",
        "Poetry",
        "use a type `moee extract --help` lists",
        lambda c: c.extract("--task-types", "Poetry"),
    ),
    Case(
        "unknown model or alias",
        "cannot load model 'nobody/no-such-model'",
        "check the Hub id, folder or alias (`moee models`)",
        lambda c: c.extract("--tasks", TASK, "--model", "nobody/no-such-model"),
    ),
    Case(
        "a model folder whose config.json is not JSON",
        "config.json is not valid JSON",
        "fix config.json or download the model again",
        _damaged_model("bad-config", lambda f: (f / "config.json").write_text('{"model_type": ')),
    ),
    Case(
        "a model folder without config.json",
        "has no config.json",
        "download the model again",
        _damaged_model("no-config", _remove("config.json")),
    ),
    Case(
        "a model folder without tokenizer files",
        "has no tokenizer",
        "copy the model's tokenizer.json (or tokenizer.model) into the folder",
        _damaged_model("no-tokenizer", _remove("tokenizer.json", "tokenizer_config.json")),
    ),
    Case(
        "a tokenizer.json that is not JSON",
        "tokenizer.json is not valid JSON",
        "download the model again",
        _damaged_model("bad-tokenizer", lambda f: (f / "tokenizer.json").write_text("{")),
    ),
    Case(
        "a model folder without weights",
        "holds no weights",
        "download the model again",
        _damaged_model("no-weights", _remove("model.safetensors")),
    ),
    Case(
        "a truncated model.safetensors",
        "model.safetensors is damaged or cut short",
        "download the model again",
        _damaged_model("cut-weights", _cut_weights),
    ),
    Case(
        "a shard the weight index lists, missing",
        "lists model-00002-of-00002.safetensors, not there",
        "download the model again",
        _damaged_model("lost-shard", _lost_shard),
    ),
    Case(
        "a config.json whose sizes differ from the weights",
        "config.json does not match the weights",
        "fix config.json or download the model again",
        _damaged_model("wide-config", _edit_config(hidden_size=128)),
    ),
    Case(
        "a config.json with more layers than the weights",
        "the checkpoint lacks",
        "fix config.json or download the model again",
        _damaged_model("deep-config", _edit_config(num_hidden_layers=5)),
    ),
    Case(
        "a model without MoE layers",
        "not a Mixture-of-Experts model",
        "use an MoE model",
        lambda c: c.extract("--tasks", TASK, "--model", str(_dense_model(c))),
    ),
    Case(
        "unknown prompt",
        "unknown prompt 'nonsense'",
        "use a prompt name or a template with {text}",
        lambda c: c.extract("--tasks", TASK, "--prompt", "nonsense"),
    ),
    Case(
        "template with {text} twice",
        "exactly once",
        "put {text} in the template once",
        lambda c: c.extract("--tasks", TASK, "--prompt", "{text} and {text}"),
    ),
    Case(
        "data dir that does not exist",
        "does not exist or is not readable",
        "fix --data-dir",
        lambda c: c.extract("--tasks", "BIOSSES", "--data-dir", str(c.tmp / "nope")),
    ),
    Case(
        "data dir with wrong columns",
        "mteb cannot evaluate BIOSSES (test) on its data",
        "use MTEB's column names; move the task's snapshot away",
        lambda c: c.extract("--tasks", "BIOSSES", "--data-dir", str(c.data(a=["x"], b=["y"]))),
    ),
    Case(
        "data dir missing a split",
        "lacks split file(s) test.parquet",
        "add <Task>/<split>.parquet",
        _missing_split,
    ),
    Case("task file that is not Parquet", "as Parquet", "write the split as Parquet", _not_parquet),
    Case(
        "a split file that is a symlink loop",
        "a symbolic link loop",
        "point the link at the real file",
        _looped_split,
    ),
    Case(
        "a text column of integers",
        "column 'sentence1' holds int64, not text",
        "write the column as strings",
        _integer_texts,
    ),
    Case(
        "empty task (a split without rows)",
        "has no rows",
        "check the task's data",
        lambda c: c.extract("--tasks", "BIOSSES", "--data-dir", str(c.data([]))),
    ),
    Case(
        "a null text",
        "null value(s)",
        "use an empty string or drop the row",
        lambda c: c.extract("--tasks", "BIOSSES", "--data-dir", str(c.data(["a b", None, "c"]))),
    ),
    Case(
        "all texts empty",
        "are empty or whitespace",
        "check the task's data",
        lambda c: c.extract("--tasks", "BIOSSES", "--data-dir", str(c.data(["", "", ""]))),
    ),
    Case(
        "texts of only whitespace",
        "are empty or whitespace",
        "check the task's data",
        lambda c: c.extract("--tasks", "BIOSSES", "--data-dir", str(c.data([" ", "\t", " \n"]))),
    ),
    Case(
        "invalid --layers",
        "bad --layers 'abc'",
        "give MoE-layer positions such as 0-7 or 0,4,8",
        lambda c: c.score("--layers", "abc"),
    ),
    Case(
        "--layers beyond the model",
        "out of range",
        "positions run 0..n_moe_layers-1",
        lambda c: c.score("--layers", "0-9"),
    ),
    Case(
        "invalid --hs-layers",
        "bad --hs-layers 'abc'",
        "give last, all or decoder-layer positions such as 0-3",
        lambda c: c.score("--hs-layers", "abc"),
    ),
    Case(
        "--hs-layers all on an entry extracted with last",
        "rerun with --extend",
        "add --extend (the texts there are kept) or --overwrite",
        lambda c: c.extract("--tasks", TASK, "--hs-layers", "all"),
    ),
    Case(
        "scoring --hs-layers all from a cache of the last layer",
        "--hs-layers all --extend",
        "extract every layer's hidden states first",
        lambda c: c.score("--hs-layers", "all", "--method", "HS"),
    ),
    Case(
        "--shard 3/2",
        "need 0 <= I < N",
        "use I/N with 0 <= I < N",
        lambda c: c.extract("--tasks", TASK, "--shard", "3/2"),
    ),
    Case(
        "a cache made with other settings",
        "was made with other settings",
        "use the same settings, --overwrite, or another --cache-dir",
        lambda c: c.extract("--tasks", TASK, "--max-length", "64"),
    ),
    Case(
        "an entry moved under another model",
        "not of its folder",
        "move it back, or re-extract",
        _then(_move_entry, lambda c: c.score("--model", "org/other")),
    ),
    Case(
        "a manifest that is not JSON",
        "is not valid JSON",
        "`moee verify --repair`, then `moee extract`",
        _then(lambda c: (c.entry / store.MANIFEST).write_text("{oops"), lambda c: c.score()),
    ),
    Case(
        "a part missing a column",
        "cannot be read",
        "`moee verify --repair`, then `moee extract`",
        _then(_drop_column, lambda c: c.score()),
    ),
    Case(
        "a part with a flipped byte",
        "does not match its SHA-256",
        "`moee verify --repair`, then `moee extract`",
        _then(_flip_byte, lambda c: c.score()),
    ),
    Case(
        "a cache from a newer schema version",
        "newer than this moee-pipeline reads",
        "upgrade moee-pipeline",
        _then(lambda c: _edit_manifest(c, schema_version=99), lambda c: c.score()),
    ),
    Case(
        "a truncated task snapshot",
        "task snapshot file",
        "`moee verify --repair`, then `moee extract`",
        _then(_truncate_snapshot, lambda c: c.score()),
    ),
    Case(
        "a results dir that is a file",
        "is a file",
        "give --output a folder",
        lambda c: [*c.score()[:-4], "--output", _file(c, "results-file")],
    ),
    Case(
        "a cache dir that is a file",
        "is a file",
        "give --cache-dir a folder",
        lambda c: ["ls", "--cache-dir", _file(c, "cache-file")],
    ),
    Case(
        "scores.csv with a foreign header",
        "is not a moee scores.csv",
        "move the file away or choose another --output",
        _then(_foreign_scores, lambda c: c.score()),
    ),
    Case(
        "scores.csv with its last row cut short",
        "fields, not the header's",
        "move the file away (or repair that line)",
        _then(lambda c: _scores_file(c, cut=40), lambda c: c.score()),
    ),
    Case(
        "the same, for `moee report`",
        "fields, not the header's",
        "move the file away (or repair that line)",
        _then(lambda c: _scores_file(c, cut=40), _report),
    ),
    Case(
        "an old scores.csv holding a NaN score, for `moee report`",
        "an older moee-pipeline wrote it",
        "delete that line or move the file away",
        _then(lambda c: _scores_file(c, main_score="nan"), _report),
    ),
    Case(
        "a task whose score is not a number (constant gold scores)",
        "is not a number in",
        "check the task's data; the other tasks' rows are written",
        _then(_constant_gold, lambda c: c.score("--tasks", "BIOSSES")),
    ),
    Case(
        "--output inside the cache",
        "is inside the cache's features folder",
        "give --output a folder outside the cache's features and tasks",
        lambda c: [*c.score()[:-4], "--output", str(c.cache / "features" / "model=x")],
    ),
    Case(
        "a manifest that is a folder",
        "is a folder, not a manifest file",
        "`moee verify --repair`, then `moee extract`",
        _then(_manifest_folder, lambda c: c.extract("--tasks", TASK)),
    ),
    Case(
        "two model names whose characters were replaced alike",
        "no complete cached tasks",
        "each name has its own entries: extract the model you score",
        _namesakes,
    ),
    Case(
        "a Hub id whose slug names a local folder's entry",
        "holds features of model",
        "name the model as it was extracted, or use another --cache-dir",
        _hub_id_meets_folder,
    ),
    Case(
        "--data-dir with other data than the task's snapshot",
        "holds other BIOSSES data than the cache's snapshot",
        "move `<cache>/tasks/<Task>` away and extract with --overwrite, or drop --data-dir",
        _other_snapshot_data,
    ),
    Case(
        "--max-length below the template's length",
        "the template alone is",
        "raise --max-length or shorten the template",
        lambda c: c.extract("--tasks", TASK, "--prompt", "prompteol", "--max-length", "8"),
    ),
    Case(
        "--max-length above the model's positions",
        "more than the 1024 positions",
        "use a --max-length within the model's positions",
        lambda c: c.extract("--tasks", TASK, "--prompt", "prompteol", "--max-length", "2048"),
    ),
    Case(
        "an entry holding texts its task no longer has",
        "no longer has (its data changed)",
        "rerun with --overwrite",
        _then(_texts_changed, lambda c: c.extract("--tasks", TASK)),
    ),
    Case(
        "--weight -1",
        "-1",
        "weights are >= 0",
        lambda c: c.score("--method", "MoEE-sum", "--weight", "-1"),
    ),
    Case(
        "--weight 1e308",
        "at most 10000",
        "weights run from 0 to 10,000",
        lambda c: c.score("--method", "MoEE-sum", "--weight", "1e308"),
    ),
    Case(
        'an empty --tasks ("" or ",")',
        "names nothing",
        "name a task, or leave --tasks out for the default",
        lambda c: c.extract("--tasks", ""),
    ),
    Case(
        "an empty --task-types",
        "names nothing",
        "name a type, or leave --task-types out",
        lambda c: c.score("--task-types", ","),
    ),
    Case(
        "--device tpu",
        "unknown --device 'tpu'",
        "use auto, cpu, cuda or cuda:N",
        lambda c: c.extract("--tasks", TASK, "--device", "tpu"),
    ),
    Case(
        "scoring a model never extracted",
        "no complete cached tasks",
        "run `moee extract` first",
        lambda c: c.score("--model", "org/never"),
    ),
    Case(
        "retrieval qrels naming a document the corpus lacks",
        "corpus-id 'd9' is not in",
        "drop that qrels row or add the document",
        lambda c: c.retrieval(qrels=_QRELS_NO_DOC),
    ),
    Case(
        "retrieval qrels naming a query the queries lack",
        "query-id 'q7' is not in",
        "drop that qrels row or add the query",
        lambda c: c.retrieval(qrels=_QRELS_NO_QUERY),
    ),
    Case(
        "a retrieval corpus with one document id twice",
        "appear more than once (first 'd1')",
        "give every document its own id",
        lambda c: c.retrieval(corpus=_CORPUS),
    ),
    Case(
        "an empty retrieval corpus",
        "has no rows: a retrieval split needs its corpus",
        "add the documents",
        lambda c: c.retrieval(corpus={"id": [], "title": [], "text": []}),
    ),
    Case(
        "an empty retrieval query set",
        "has no rows: a retrieval split needs its queries",
        "add the queries",
        lambda c: c.retrieval(queries={"id": [], "text": []}),
    ),
    Case(
        "a retrieval qrels score that is not a number",
        "qrels score 'high' is not a number",
        "write integer relevance grades",
        lambda c: c.retrieval(qrels=_QRELS_TEXT_SCORE),
    ),
    Case(
        "a retrieval part missing a column",
        "lacks column(s) corpus-id",
        "use the columns id, title, text / id, text / query-id, corpus-id, score",
        lambda c: c.retrieval(qrels={"query-id": ["q1"], "score": [1]}),
    ),
    Case(
        "a --split no task has",
        "has none of the splits",
        "extract with --splits test,validation",
        lambda c: c.score("--split", "validation"),
    ),
    Case(
        "--query-prompt beside two --prompt values",
        "take one --prompt (the other side's default)",
        "run one --prompt at a time",
        lambda c: c.extract(
            "--tasks", TASK, "--prompt", "none", "--prompt", "style", "--query-prompt", "tone"
        ),
    ),
    Case(
        "--document-prompt with --zscore-fit task",
        "with --query-prompt/--document-prompt use --zscore-fit split",
        "use --zscore-fit split",
        lambda c: c.score("--document-prompt", "style", "--zscore-fit", "task"),
    ),
]


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _paths(root: Path) -> set[str]:
    """Every file and folder under a cache (locks included: a refusal leaves none)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_is_one_line_and_loses_nothing(
    case: Case, toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    model, cache = toy_cache
    ctx = Context(model=model, cache=cache, tmp=tmp_path)
    args = case.command(ctx)
    before, paths = _hashes(cache), _paths(cache)
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert case.message in errors[0], result.output
    after = _hashes(cache)
    lost = {name: h for name, h in before.items() if after.get(name) != h}
    assert not lost, f"cached files lost or changed: {sorted(lost)}"
    left = _paths(cache) - paths
    assert not left, f"a refusal left traces: {sorted(left)}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_dir_is_one_line(toy_cache: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = toy_cache
    cache = tmp_path / "ro"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        result = CliRunner().invoke(
            main, ["extract", "--model", str(model), "--tasks", TASK, "--cache-dir", str(cache)]
        )
    finally:
        cache.chmod(0o755)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "Permission denied" in result.output.strip().splitlines()[-1]


def troubleshooting_table() -> str:
    """The README's troubleshooting table, one row per catalogue case."""
    lines = ["| bad input | the error line says | what to do |", "|---|---|---|"]
    for case in CASES:
        message = case.message.replace("|", "\\|")
        lines.append(f"| {case.what} | `{message}` | {case.fix} |")
    return "\n".join(lines)


def test_the_catalogue_has_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20
    assert len({c.what for c in CASES}) == len(CASES)


def test_readme_troubleshooting_table_lists_every_case() -> None:
    assert troubleshooting_table() in README.read_text(encoding="utf-8")
