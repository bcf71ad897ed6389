"""The bad-input catalogue: each case is one clear error line, no traceback, nothing cached lost.

The README's troubleshooting table is built from `CASES` (`troubleshooting_table()`), and a test
checks that the README holds it verbatim, so the two cannot drift. To refresh the README:
`.venv/bin/python -c "from tests.cli.test_bad_input import troubleshooting_table as t; print(t())"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from moee_pipeline.cache import layout, parts, store
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


def _foreign_scores(ctx: Context) -> None:
    (ctx.tmp / "results").mkdir()
    (ctx.tmp / "results" / "scores.csv").write_text("name,value\nx,1\n")


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
        "--weight -1",
        "-1",
        "weights are >= 0",
        lambda c: c.score("--method", "MoEE-sum", "--weight", "-1"),
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
        "a --split no task has",
        "has none of the splits",
        "extract with --splits test,validation",
        lambda c: c.score("--split", "validation"),
    ),
]


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_is_one_line_and_loses_nothing(
    case: Case, toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    model, cache = toy_cache
    ctx = Context(model=model, cache=cache, tmp=tmp_path)
    args = case.command(ctx)
    before = _hashes(cache)
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert case.message in errors[0], result.output
    after = _hashes(cache)
    lost = {name: h for name, h in before.items() if after.get(name) != h}
    assert not lost, f"cached files lost or changed: {sorted(lost)}"


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
