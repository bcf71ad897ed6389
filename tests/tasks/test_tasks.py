"""Tests for task selection, loading, snapshots and the texts a task encodes."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import re
from pathlib import Path
from typing import Any

import mteb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import ClassLabel, Dataset, DatasetDict
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.clustering import AbsTaskClustering
from mteb.models.model_meta import ModelMeta
from mteb.similarity_functions import cos_sim, pairwise_cos_sim

from moee_pipeline.cache import snapshots as snapshot
from moee_pipeline.cache import sources
from moee_pipeline.tasks import (
    PAPER_TASKS,
    TASK_TYPES,
    TaskError,
    get_task,
    load_task,
    registry,
    select_tasks,
    task_texts,
    task_type,
    write_snapshot,
)
from moee_pipeline.tasks.columns import text_columns
from moee_pipeline.testing.toy import TOY_TASKS, MoeeToySTS
from moee_pipeline.testing.toy_retrieval import TOY_RETRIEVAL_TASKS
from tests.support.paths import SHARED

DATA = SHARED / "mteb-data"
PARTIAL = SHARED / "mteb-data-partial"
MAIN_SCORES = {
    "STS": "cosine_spearman",
    "Classification": "accuracy",
    "Clustering": "v_measure",
    "PairClassification": "max_ap",
    "Reranking": "map_at_1000",
    "Summarization": "cosine_spearman",
}


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


class BagOfWordsEncoder:
    """A deterministic hashed bag-of-words encoder: no model, but sees the toy topics."""

    def __init__(self) -> None:
        self.meta = ModelMeta.create_empty({"name": "tests/bow", "revision": "1"})

    @property
    def mteb_model_meta(self) -> ModelMeta:
        return self.meta

    def encode(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        rows = []
        for batch in inputs:
            for text in batch["text"]:
                vec = np.zeros(256, dtype=np.float32)
                for word in text.lower().replace(".", " ").replace(",", " ").split():
                    vec[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 256] += 1
                rows.append(vec + 1e-3)
        return np.stack(rows)

    def similarity(self, a: Any, b: Any) -> Any:
        return cos_sim(a, b)

    def similarity_pairwise(self, a: Any, b: Any) -> Any:
        return pairwise_cos_sim(a, b)


class LookupEncoder(BagOfWordsEncoder):
    """Looks texts up by sha256(text), as the scoring stage does; fails on a miss."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self.known = {hashlib.sha256(t.encode()).hexdigest() for t in texts}

    def encode(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        batches = list(inputs)
        for batch in batches:
            for text in batch["text"]:
                assert hashlib.sha256(text.encode()).hexdigest() in self.known, text
        return super().encode(batches)


def _score_with_lookup(task: Any, texts: list[str]) -> float:
    result = mteb.evaluate(LookupEncoder(texts), task, cache=None, show_progress_bar=False)
    return float(result.task_results[0].get_score())


# ---------------------------------------------------------------- selection
def test_select_tasks_defaults_and_types() -> None:
    assert select_tasks() == list(PAPER_TASKS)
    assert len(PAPER_TASKS) == 19
    assert set(PAPER_TASKS.values()) == set(TASK_TYPES)
    sts = select_tasks(task_types=["STS"])
    assert sts == ["STS12", "STS13", "STS14", "STS15", "STS16", "BIOSSES", "SICK-R", "STSBenchmark"]
    assert select_tasks(task_types=["Reranking", "Summarization"]) == [
        "AskUbuntuDupQuestions",
        "SciDocsRR",
        "StackOverflowDupQuestions",
        "SummEval",
    ]
    assert select_tasks(tasks=["MoeeToySTS", "STS22", "MoeeToySTS"]) == ["MoeeToySTS", "STS22"]
    for name, kind in PAPER_TASKS.items():
        assert get_task(name).metadata.type == kind


def test_select_tasks_errors() -> None:
    with pytest.raises(TaskError, match="unknown task type"):
        select_tasks(task_types=["BitextMining"])
    with pytest.raises(TaskError, match="none of the paper's tasks is of type Retrieval"):
        select_tasks(task_types=["Retrieval"])  # a type both stages take, but no paper task
    with pytest.raises(TaskError, match="STSBenchmark"):
        select_tasks(tasks=["STSBenchmrk"])
    with pytest.raises(TaskError, match="not in"):
        select_tasks(tasks=["MoeeToySTS"], task_types=["Clustering"])


@pytest.mark.parametrize(
    ("given", "option"), [({"tasks": []}, "--tasks"), ({"task_types": []}, "--task-types")]
)
def test_an_empty_selection_is_refused_not_read_as_the_default(
    given: dict[str, list[str]], option: str
) -> None:
    with pytest.raises(TaskError, match=f"{option} names nothing"):
        select_tasks(**given)
    with pytest.raises(TaskError, match="--tasks names nothing"):
        select_tasks(tasks=[], task_types=["STS"])


def test_get_task_unknown_and_unsupported() -> None:
    with pytest.raises(TaskError, match=r"did you mean.*STSBenchmark") as err:
        get_task("STSBenchmrk")
    assert "\n" not in str(err.value)
    with pytest.raises(TaskError, match=r"supported types: .*Summarization, Retrieval"):
        get_task("BornholmBitextMining")
    assert get_task("SciFact").metadata.type == "Retrieval"


# ---------------------------------------------------------------- registered tasks
class MoeePluginSTS(MoeeToySTS):
    """A task another package registers: the toy STS under a name of its own."""

    metadata = MoeeToySTS.metadata.model_copy(update={"name": "MoeePluginSTS"})


#: What the plugin's entry point names.
PLUGIN_TASKS = {"MoeePluginSTS": MoeePluginSTS}


def _with_entry_point(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Install-free: the installed entry points plus one of a package named `plugin`."""
    real = importlib.metadata.entry_points
    extra = importlib.metadata.EntryPoint(name="plugin", value=value, group=registry.ENTRY_POINTS)

    def entry_points(**selection: Any) -> Any:
        found = real(**selection)
        return [*found, extra] if selection.get("group") == registry.ENTRY_POINTS else found

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)


def test_the_toy_tasks_are_registered_through_their_entry_point() -> None:
    points = importlib.metadata.entry_points(group=registry.ENTRY_POINTS)
    assert [p.value for p in points] == [
        "moee_pipeline.testing.toy:TOY_TASKS",
        "moee_pipeline.testing.toy_retrieval:TOY_RETRIEVAL_TASKS",
    ]
    assert registry.registered_tasks() == {**TOY_TASKS, **TOY_RETRIEVAL_TASKS}
    assert all(registry.is_registered(name) for name in [*TOY_TASKS, *TOY_RETRIEVAL_TASKS])
    assert not registry.is_registered("STS12")


def test_a_task_another_package_registers_is_found_selected_and_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(TaskError, match="unknown task 'MoeePluginSTS'"):
        get_task("MoeePluginSTS")
    _with_entry_point(monkeypatch, f"{__name__}:PLUGIN_TASKS")
    assert registry.registered_tasks() == {**TOY_TASKS, **TOY_RETRIEVAL_TASKS, **PLUGIN_TASKS}
    assert isinstance(get_task("MoeePluginSTS"), MoeePluginSTS)
    assert select_tasks(tasks=["MoeePluginSTS"], task_types=["STS"]) == ["MoeePluginSTS"]
    assert task_type("MoeePluginSTS") == "STS"
    task = load_task("MoeePluginSTS", cache_dir=None)  # its own loader: built in code
    assert set(task_texts(task)) == set(task_texts(load_task("MoeeToySTS")))
    with pytest.raises(TaskError, match=r"did you mean MoeePluginSTS\?.*registered task"):
        get_task("MoeePluginSTX")


@pytest.mark.parametrize("value", ["no_such_module_anywhere:TASKS", f"{__name__}:MAIN_SCORES"])
def test_a_broken_registration_is_one_line(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    _with_entry_point(monkeypatch, value)
    with pytest.raises(TaskError, match=r"task registration 'plugin'.*fix or uninstall") as err:
        get_task("MoeeToySTS")
    assert "\n" not in str(err.value)


def test_a_data_dir_replaces_a_registered_tasks_loader_only_where_it_holds_the_task(
    tmp_path: Path,
) -> None:
    own = task_texts(load_task("MoeeToySTS"))
    elsewhere = tmp_path / "data"
    (elsewhere / "OtherTask").mkdir(parents=True)
    assert task_texts(load_task("MoeeToySTS", data_dir=elsewhere)) == own  # no folder: its own
    rows = {"sentence1": ["A cat sat.", "Rain fell."], "sentence2": ["A dog ran.", "Sun shone."]}
    folder = elsewhere / "MoeeToySTS"
    folder.mkdir()
    Dataset.from_dict({**rows, "score": [3.0, 1.0]}).to_parquet(folder / "test.parquet")
    local = load_task("MoeeToySTS", data_dir=elsewhere)
    assert set(task_texts(local)) == {*rows["sentence1"], *rows["sentence2"]}
    with pytest.raises(TaskError, match="does not exist or is not readable"):
        load_task("MoeeToySTS", data_dir=tmp_path / "missing")  # a wrong --data-dir is an error


# ---------------------------------------------------------------- toy tasks
@pytest.mark.parametrize("name", list(TOY_TASKS))
def test_toy_task_evaluates_end_to_end(name: str) -> None:
    task = get_task(name)
    assert isinstance(task, TOY_TASKS[name])
    kind = task_type(name)
    assert kind in TASK_TYPES and task.metadata.main_score == MAIN_SCORES[kind]
    result = mteb.evaluate(
        BagOfWordsEncoder(), load_task(name), cache=None, show_progress_bar=False
    )
    score = result.task_results[0].get_score()
    assert math.isfinite(score)
    assert score > 0.4, f"{name}: a topic-aware encoder should score well, got {score}"
    assert 20 <= len(task_texts(load_task(name))) <= 200


def _expected_texts(task: Any) -> set[str]:
    """The texts a task encodes, computed from its data without running the evaluation."""
    kind = task.metadata.type
    if kind == "Reranking":
        split = task.dataset["default"]["test"]
        docs = {row["id"]: row for row in split["corpus"]}
        texts = set(split["queries"]["text"])
        for ids in split["top_ranked"].values():
            for doc in (docs[i] for i in ids):
                title = doc.get("title") or ""
                texts.add(f"{title} {doc['text']}".strip() if title else doc["text"].strip())
        return texts
    data = task.dataset["test"]
    if kind in {"STS", "PairClassification"}:
        return set(data["sentence1"]) | set(data["sentence2"])
    if kind == "Clustering":
        return set(data["sentences"])
    if kind == "Summarization":
        rows = list(data["human_summaries"]) + list(data["machine_summaries"])
        return {s for row in rows for s in row}
    assert isinstance(task, AbsTaskClassification) and task.dataset is not None
    # few-shot rows, re-implemented: each experiment re-shuffles the previous permutation with a
    # fresh RandomState(seed) and walks it, taking the first samples_per_label rows of each label
    train = snapshot.arrow_table(task.dataset[task.train_split])
    labels, train_texts = train.column("label").to_pylist(), train.column("text").to_pylist()
    idxs = list(range(len(labels)))
    picked: set[int] = set()
    for _ in range(task.n_experiments):
        np.random.RandomState(task.seed).shuffle(idxs)
        counts: dict[Any, int] = {}
        for i in idxs:
            if counts.get(labels[i], 0) < task.samples_per_label:
                counts[labels[i]] = counts.get(labels[i], 0) + 1
                picked.add(i)
    return set(data["text"]) | {train_texts[i] for i in picked}


@pytest.mark.parametrize("name", list(TOY_TASKS))
def test_task_texts_toy(name: str) -> None:
    task = load_task(name)
    texts = task_texts(task)
    assert len(texts) == len(set(texts))
    assert set(texts) == _expected_texts(task)
    assert task_texts(task) == texts  # deterministic, and the task object is left as it was


def test_reranking_texts_join_titles() -> None:
    texts = task_texts(load_task("MoeeToyReranking"))
    assert any(t.split()[0] in {"Sports", "Cooking", "Weather", "Music"} for t in texts)


def test_task_texts_leave_task_rng_alone() -> None:
    task = load_task("MoeeToyClustering")
    assert isinstance(task, AbsTaskClustering) and task.dataset is not None
    task.max_fraction_of_documents_to_embed = 0.5  # makes clustering draw from task.rng_state
    first = task_texts(task)
    assert task_texts(task) == first
    assert len(first) < len(set(task.dataset["test"]["sentences"]))


def test_no_results_written_to_home_cache() -> None:
    task_texts(load_task("MoeeToySTS"))
    assert not list((Path.home() / ".cache" / "mteb").glob("**/moee-pipeline__text-recorder"))


# ---------------------------------------------------------------- snapshots
def _tree_equal(a: Any, b: Any) -> None:
    if isinstance(a, Dataset):
        assert isinstance(b, Dataset)
        assert a.features == b.features
        assert a.with_format("arrow")[:].equals(b.with_format("arrow")[:])
        return
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _tree_equal(a[key], b[key])
    else:
        assert json.loads(json.dumps(a)) == b


@pytest.mark.parametrize("name", list(TOY_TASKS))
def test_snapshot_round_trip(name: str, tmp_path: Path) -> None:
    task = load_task(name)
    folder = write_snapshot(task, cache_dir=tmp_path)
    assert folder == tmp_path / "tasks" / name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task"] == name and manifest["mteb_version"] == mteb.__version__
    again = load_task(name, cache_dir=tmp_path)
    _tree_equal(task.dataset, again.dataset)
    texts = task_texts(task)
    assert task_texts(again) == texts
    # the scoring stage's contract: every text mteb asks for was recorded at extraction time
    assert math.isfinite(_score_with_lookup(load_task(name, cache_dir=tmp_path), texts))


def test_snapshot_keeps_order_features_and_selection(tmp_path: Path) -> None:
    task = load_task("MoeeToyClassification")
    assert task.dataset is not None
    reordered = task.dataset["train"].select(list(range(63, -1, -2)))  # an indices mapping
    task.dataset = DatasetDict({"train": reordered, "test": task.dataset["test"]})
    write_snapshot(task, cache_dir=tmp_path)
    back = load_task("MoeeToyClassification", cache_dir=tmp_path).dataset
    assert back is not None
    assert isinstance(back["train"].features["label"], ClassLabel)
    assert back["train"]["text"] == reordered["text"]
    assert back["train"]["label"] == reordered["label"]


def test_snapshot_half_written_ignored_and_rewrite_noop(tmp_path: Path) -> None:
    folder = tmp_path / "tasks" / "MoeeToySTS"
    folder.mkdir(parents=True)
    Dataset.from_dict({"sentence1": ["x"], "sentence2": ["y"], "score": [1.0]}).to_parquet(
        folder / "junk.parquet"
    )
    task = load_task("MoeeToySTS", cache_dir=tmp_path)  # no manifest: falls back to the toy data
    assert task.dataset is not None and len(task.dataset["test"]) == 48
    assert snapshot.read_snapshot("MoeeToySTS", cache_dir=tmp_path) is None
    write_snapshot(task, cache_dir=tmp_path)
    assert not (folder / "junk.parquet").exists()
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    write_snapshot(task, cache_dir=tmp_path)
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    write_snapshot(task, cache_dir=tmp_path, overwrite=True)
    assert (folder / "manifest.json").exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------- local data
def test_load_task_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="does not exist"):
        load_task("STSBenchmark", data_dir=tmp_path / "nope")
    with pytest.raises(TaskError, match="no folder"):
        load_task("STSBenchmark", data_dir=tmp_path)
    (tmp_path / "EmotionClassification").mkdir()
    Dataset.from_dict({"text": ["a"], "label": [0]}).to_parquet(
        tmp_path / "EmotionClassification" / "test.parquet"
    )
    with pytest.raises(TaskError, match=r"lacks split.*train"):
        load_task("EmotionClassification", data_dir=tmp_path)
    with pytest.raises(TaskError, match="data-dir"):
        load_task("BIOSSES", data_dir=None)  # offline: mteb's loader cannot reach the Hub


# ---------------------------------------------------------------- text column types
#: The columns each toy task's evaluation encodes, as `_expected_texts` reads them.
TOY_TEXT_COLUMNS = {
    "MoeeToySTS": ["sentence1", "sentence2"],
    "MoeeToyClassification": ["text"],
    "MoeeToyClustering": ["sentences"],
    "MoeeToyPairClassification": ["sentence1", "sentence2"],
    "MoeeToyReranking": [],  # retrieval-style: no data dir, its loader builds it
    "MoeeToySummarization": ["human_summaries", "machine_summaries"],
}


@pytest.mark.parametrize("name", list(TOY_TASKS))
def test_text_columns_are_where_the_encoded_texts_come_from(name: str) -> None:
    task = load_task(name)
    columns = text_columns(task)
    assert columns == TOY_TEXT_COLUMNS[name]
    if not columns:
        return
    held: set[str] = set()
    assert task.dataset is not None
    for split in task.dataset.values():
        for column in columns:
            for value in split[column]:
                held.update(value if isinstance(value, list) else [value])
    assert set(task_texts(task)) <= held  # every text mteb encoded lives in those columns


def _biosses_with(tmp_path: Path, **columns: Any) -> Path:
    folder = tmp_path / "BIOSSES"
    folder.mkdir(exist_ok=True)
    table = {"sentence1": ["a b", "c d"], "sentence2": ["e f", "g h"], "score": [1.0, 2.0]}
    pq.write_table(pa.table({**table, **columns}), folder / "test.parquet")
    return folder / "test.parquet"


@pytest.mark.parametrize(
    ("values", "kind"),
    [([1, 2], "int64"), ([0.5, 1.5], "double"), ([True, False], "bool"), ([None, None], "null"),
     ([b"a", b"b"], "binary"), ([[1], [2]], "list<item: int64>")],
)  # fmt: skip
def test_a_text_column_of_another_type_is_refused_when_its_file_is_read(
    tmp_path: Path, values: list[Any], kind: str
) -> None:
    path = _biosses_with(tmp_path, sentence2=values)
    with pytest.raises(TaskError) as error:
        load_task("BIOSSES", data_dir=tmp_path)
    assert str(error.value).startswith(f"{path}: column 'sentence2' holds {kind}, not text")


def test_text_columns_of_any_string_type_are_read(tmp_path: Path) -> None:
    wide = pa.array(["a b", "c d"], pa.large_string())
    _biosses_with(tmp_path, sentence1=wide, sentence2=pa.array(["e f", "g h"]).dictionary_encode())
    assert task_texts(load_task("BIOSSES", data_dir=tmp_path)) == ["a b", "c d", "e f", "g h"]


class MoeeIntegerSTS(MoeeToySTS):
    """A registered task whose own loader puts integers in a text column."""

    metadata = MoeeToySTS.metadata.model_copy(update={"name": "MoeeIntegerSTS"})

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        rows = {"sentence1": [1, 2], "sentence2": ["a b", "c d"], "score": [1.0, 2.0]}
        self.dataset = DatasetDict({"test": Dataset.from_dict(rows)})
        self.data_loaded = True


INTEGER_TASKS = {"MoeeIntegerSTS": MoeeIntegerSTS}


def test_a_text_column_of_integers_is_refused_from_a_loader_and_a_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_entry_point(monkeypatch, f"{__name__}:INTEGER_TASKS")
    with pytest.raises(TaskError, match=r"^MoeeIntegerSTS \(test, from its loader\): column "):
        load_task("MoeeIntegerSTS")
    task = get_task("MoeeIntegerSTS")
    task.load_data()  # as an older version snapshotted it, before the check existed
    folder = write_snapshot(task, cache_dir=tmp_path)
    with pytest.raises(TaskError, match=r"holds int64, not text.*move the snapshot away") as error:
        load_task("MoeeIntegerSTS", cache_dir=tmp_path)
    assert str(error.value).startswith(f"task snapshot {folder} (test): column 'sentence1'")


@pytest.mark.integration
def test_every_staged_mteb_task_passes_the_column_check(mteb_data: Path) -> None:
    for folder in sorted(p for p in mteb_data.iterdir() if p.is_dir() and p.name != "SciFact"):
        task = load_task(folder.name, data_dir=mteb_data)  # the check runs on real data
        assert task.dataset is not None
        names = {c for d in task.dataset.values() for c in d.column_names}
        assert text_columns(task) and set(text_columns(task)) <= names, folder.name


# ---------------------------------------------------------------- unreadable paths
def _self_link(path: Path) -> None:
    path.symlink_to(path)


def _dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "gone.parquet")


@pytest.mark.parametrize(
    ("damage", "cause"),
    [(_self_link, "symbolic link loop"), (_dangling_link, "a link to nothing"),
     (Path.mkdir, "a folder, not a file")],
    ids=["loop", "dangling", "folder"],
)  # fmt: skip
def test_a_split_path_the_os_cannot_open_says_why(tmp_path: Path, damage: Any, cause: str) -> None:
    path = _biosses_with(tmp_path)
    path.unlink()
    damage(path)
    with pytest.raises(TaskError, match=f"^cannot open task data {re.escape(str(path))} .*{cause}"):
        load_task("BIOSSES", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["BIOSSES", "MoeeToySTS"])  # mteb's task; a registered one
def test_a_task_folder_that_is_a_link_loop_is_refused_not_taken_for_absent(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / name).symlink_to(tmp_path / name)
    with pytest.raises(
        TaskError, match=f"^cannot open task data {re.escape(str(tmp_path / name))} .*link loop"
    ):
        load_task(name, data_dir=tmp_path)


@pytest.mark.integration
def test_load_real_sts_and_summeval(tmp_path: Path) -> None:
    data = _need(DATA)
    sts = load_task("STSBenchmark", data_dir=data)
    assert sts.data_loaded and sts.dataset is not None and len(sts.dataset["test"]) == 1379
    texts = task_texts(sts)
    assert set(texts) == _expected_texts(sts) and task_texts(sts) == texts
    assert math.isfinite(_score_with_lookup(sts, texts))
    summ = load_task("SummEval", data_dir=data)
    assert set(task_texts(summ)) == _expected_texts(summ)
    write_snapshot(summ, cache_dir=tmp_path)
    _tree_equal(summ.dataset, load_task("SummEval", cache_dir=tmp_path).dataset)


@pytest.mark.integration
@pytest.mark.slow
def test_load_real_classification(tmp_path: Path) -> None:
    data = _need(DATA)
    task = load_task("EmotionClassification", data_dir=data)
    assert isinstance(task, AbsTaskClassification) and task.dataset is not None
    raw = pq.read_table(data / "EmotionClassification" / "train.parquet")
    assert snapshot.arrow_table(task.dataset["train"]).column("text").equals(raw.column("text"))
    texts = task_texts(task)
    assert set(texts) == _expected_texts(task)
    assert len(texts) < 2000 + 6 * 16 * task.n_experiments
    write_snapshot(task, cache_dir=tmp_path)
    back = load_task("EmotionClassification", cache_dir=tmp_path)
    _tree_equal(task.dataset, back.dataset)
    assert task_texts(back) == texts


@pytest.mark.integration
def test_load_partial_twitter_url_corpus() -> None:
    task = load_task("TwitterURLCorpus", data_dir=_need(PARTIAL))
    assert task.dataset is not None and len(task.dataset["test"]) == 9334
    assert set(task_texts(task)) == _expected_texts(task)


# ---------------------------------------------------------------- recorded texts per split


def test_split_texts_recorded_once_and_kept_with_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moee_pipeline.tasks import recording, split_texts

    task = load_task("MoeeToyClassification")
    snapshot.write_snapshot(task, cache_dir=tmp_path)
    first = split_texts(task, cache_dir=tmp_path)
    assert list(first) == ["test"] and set(first["test"]) == _expected_texts(task)
    assert snapshot.encoded_texts_file(task.metadata.name, "test", cache_dir=tmp_path).is_file()

    def no_recording(*args: Any, **kwargs: Any) -> list[str]:
        raise AssertionError("recorded again although the list is kept in the snapshot")

    monkeypatch.setattr(recording, "record_split", no_recording)
    assert split_texts(load_task("MoeeToyClassification"), cache_dir=tmp_path) == first
    assert task_texts(task, cache_dir=tmp_path) == first["test"]


def test_split_texts_not_kept_without_a_snapshot(tmp_path: Path) -> None:
    from moee_pipeline.tasks import split_texts

    split_texts(load_task("MoeeToySTS"), cache_dir=tmp_path)
    assert not snapshot.encoded_texts_file("MoeeToySTS", "test", cache_dir=tmp_path).exists()


@pytest.mark.integration
def test_split_texts_are_each_splits_own(mteb_data: Path) -> None:
    from moee_pipeline.tasks import split_texts

    task = load_task("STSBenchmark", data_dir=mteb_data)
    per_split = split_texts(task, splits=["test", "validation"])
    assert task.dataset is not None
    for split, texts in per_split.items():
        rows = task.dataset[split]
        assert set(texts) == set(rows["sentence1"]) | set(rows["sentence2"])
    assert task_texts(task, splits=["test", "validation"]) == list(
        dict.fromkeys(per_split["test"] + per_split["validation"])
    )


# ---------------------------------------------------------------- data dir against a snapshot
def _sts_dir(root: Path, sentences: list[str], *, compression: str = "snappy") -> Path:
    folder = root / "BIOSSES"
    folder.mkdir(parents=True, exist_ok=True)
    table = {
        "sentence1": sentences,
        "sentence2": list(reversed(sentences)),
        "score": [float(i % 5) for i in range(len(sentences))],
    }
    pq.write_table(
        Dataset.from_dict(table).data.table, folder / "test.parquet", compression=compression
    )
    return root


def _test_rows(task: Any) -> int:
    """Rows of a loaded task's test split."""
    assert task.dataset is not None
    return int(task.dataset["test"].num_rows)


def test_a_data_dir_must_hold_the_snapshots_data(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _sts_dir(tmp_path / "first", ["a b", "c d", "e f"])
    write_snapshot(
        load_task("BIOSSES", data_dir=first),
        cache_dir=cache,
        source=sources.source_of("BIOSSES", first),
    )
    # the same files: known by their bytes, the snapshot serves
    assert sources.same_source("BIOSSES", first, cache_dir=cache)
    assert _test_rows(load_task("BIOSSES", cache_dir=cache, data_dir=first)) == 3
    # the same data in other bytes: loaded, compared, accepted (and remembered)
    again = _sts_dir(tmp_path / "again", ["a b", "c d", "e f"], compression="zstd")
    assert not sources.same_source("BIOSSES", again, cache_dir=cache)
    assert _test_rows(load_task("BIOSSES", cache_dir=cache, data_dir=again)) == 3
    assert sources.same_source("BIOSSES", again, cache_dir=cache)
    # other data: refused in one line naming the split, the snapshot kept as it was
    before = sorted(p.read_bytes() for p in (cache / "tasks").rglob("*.parquet"))
    others = {
        "test: 4 rows, the snapshot 3": ["a b", "c d", "e f", "g h"],
        "test: other values in column 'sentence1'": ["a b", "c d", "x y"],
    }
    for what, rows in others.items():
        other = _sts_dir(tmp_path / f"other-{len(rows)}", rows)
        with pytest.raises(TaskError, match="holds other BIOSSES data than") as caught:
            load_task("BIOSSES", cache_dir=cache, data_dir=other)
        assert what in str(caught.value) and "--overwrite" in str(caught.value)
    assert sorted(p.read_bytes() for p in (cache / "tasks").rglob("*.parquet")) == before
    # a data dir without the task's folder names nothing for it: the snapshot serves
    (tmp_path / "empty").mkdir()
    assert load_task("BIOSSES", cache_dir=cache, data_dir=tmp_path / "empty").data_loaded
