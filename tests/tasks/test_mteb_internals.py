"""The private mteb internals we hook, checked directly: when mteb changes them, this fails first
and says which one, instead of scores silently drifting.

We rely on (and pin mteb to the tested minor for):
- `AbsTaskClassification._undersample_data(dataset, experiment_num, idxs)` and
  `_calculate_scores(y_test, y_pred)`, replaced on private task copies (tasks/labels.py, used
  by score/encoder.py and tasks/recording.py) so that labels are read once;
- `AbsTask.evaluate(model, split, subsets_to_run, *, encode_kwargs)`, which recording calls per
  split and subset as `mteb.evaluate` does (tasks/recording.py);
- `AbsTask.rng_state` / `np_rng`, copied per evaluation (tasks/loading.py `private_copy`);
- `filter_eval_splits`, `dataset_transform`, `label_column_name`, `train_split`.
"""

from __future__ import annotations

import inspect
from typing import Any

import mteb
import numpy as np
import pytest
from mteb.abstasks import AbsTask
from mteb.abstasks.classification import AbsTaskClassification
from packaging.version import Version

from moee_pipeline.tasks import load_task
from moee_pipeline.tasks.labels import _LabelsInMemory
from moee_pipeline.tasks.recording import _dummy_classification_scores

TESTED = Version("2.26")


def _params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_mteb_is_the_tested_minor() -> None:
    version = Version(mteb.__version__)
    assert (version.major, version.minor) == (TESTED.major, TESTED.minor), (
        f"mteb {version}: the private hooks below were checked against {TESTED}.x only"
    )


def test_classification_hooks_keep_their_signatures() -> None:
    assert _params(AbsTaskClassification._undersample_data) == [
        "self", "dataset", "experiment_num", "idxs",
    ]  # fmt: skip
    assert _params(AbsTaskClassification._calculate_scores) == ["self", "y_test", "y_pred"]


def test_task_evaluate_takes_what_recording_passes() -> None:
    params = _params(AbsTask.evaluate)
    assert params[:4] == ["self", "model", "split", "subsets_to_run"]
    assert "encode_kwargs" in params


def test_task_attributes_we_rely_on_exist() -> None:
    task = load_task("MoeeToyClassification")
    for name in ("rng_state", "np_rng", "label_column_name", "train_split", "samples_per_label"):
        assert hasattr(task, name), f"mteb tasks no longer have {name!r}"
    for name in ("filter_eval_splits", "dataset_transform"):
        assert callable(getattr(AbsTask, name, None)), f"AbsTask.{name} is gone"


def test_undersampling_reads_only_what_the_label_view_serves() -> None:
    """Sampling through `_LabelsInMemory` picks exactly the rows it picks on the dataset itself."""
    task = load_task("MoeeToyClassification")
    assert isinstance(task, AbsTaskClassification) and task.dataset is not None
    train = task.dataset[task.train_split]
    view = _LabelsInMemory(train, task.label_column_name)
    for experiment in range(3):
        plain = task._undersample_data(train, experiment, None)
        eager = task._undersample_data(view, experiment, None)
        assert plain[1] == eager[1] and plain[2] == eager[2]
        assert plain[0]["text"] == eager[0]["text"]


def test_recording_placeholder_metrics_have_mteb_keys() -> None:
    task = load_task("MoeeToyClassification")
    assert isinstance(task, AbsTaskClassification)
    real = task._calculate_scores(np.array([0, 1, 1]), np.array([0, 1, 0]))
    assert set(_dummy_classification_scores(None, None)) == set(real)


@pytest.mark.parametrize("name", ["STS12", "EmotionClassification", "SummEval"])
def test_paper_tasks_keep_the_metadata_we_read(name: str) -> None:
    task = mteb.get_task(name)
    assert task.metadata.main_score and task.eval_splits == ["test"]


def test_encoders_inherit_cosine_similarity_from_mteb() -> None:
    """Both encoders take their similarity from mteb's AbsEncoder, chosen by their metadata."""
    from moee_pipeline.score.encoder import CachedEncoder
    from moee_pipeline.tasks.recording import _TextRecorder

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    unit_a = a / np.linalg.norm(a, axis=1, keepdims=True)
    unit_b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cached = CachedEncoder(index={"x": 0}, embeddings=np.ones((1, 6), np.float32))
    for encoder in (cached, _TextRecorder()):
        matrix = np.asarray(encoder.similarity(a, b))
        pairwise = np.asarray(encoder.similarity_pairwise(a, b))
        np.testing.assert_allclose(matrix, unit_a @ unit_b.T, rtol=1e-5)
        np.testing.assert_allclose(pairwise, (unit_a * unit_b).sum(axis=1), rtol=1e-5)
