"""Tasks: inferred from the model and the targets, set by the recipe, never guessed; metrics,
directions and quality budgets."""

import numpy as np
import pytest

from edgeprune.errors import ConfigError, InputError
from edgeprune.report.schema import ArtifactRecord, figure
from edgeprune.targets import Budgets
from edgeprune.tasks import OutputTask, Task
from edgeprune.tasks.budget import budget_notes, check_budget_metric, metric_drop, quality_verdicts
from edgeprune.tasks.custom import load_metric
from edgeprune.tasks.infer import infer_task, prepare_targets
from edgeprune.tasks.spec import TaskSpec
from edgeprune.types import OutputSignature

RNG = np.random.default_rng(0)


def _infer(shape, y, *, softmax=False, loss=None, spec=TaskSpec()):
    sig = OutputSignature("out", shape, softmax, loss)
    return infer_task([sig], [y], spec, "data.npz", ["y_train"]).outputs[0]


def test_infer_task_reads_integer_labels_as_classification():
    out = _infer((10,), RNG.integers(0, 10, 50))
    assert out.kind == "classification" and out.num_classes == 10 and not out.probabilities


def test_infer_task_reads_one_hot_rows_as_classification():
    out = _infer((4,), np.eye(4)[RNG.integers(0, 4, 30)], softmax=True)
    assert out.kind == "classification" and out.probabilities


def test_infer_task_exits_2_when_float_targets_meet_output_without_softmax():
    # An autoencoder's reconstruction targets, no saved loss: regression or 64 class scores?
    with pytest.raises(InputError) as err:
        _infer((64,), RNG.random((30, 64)).astype(np.float32))
    assert err.value.exit_code == 2
    assert 'task = { kind = "regression" }' in str(err.value) and "'out'" in str(err.value)


def test_infer_task_takes_the_saved_loss_when_it_says_regression():
    out = _infer((64,), RNG.random((30, 64)), loss="mean_squared_error")
    assert out.kind == "regression" and "compiled with loss" in out.how


def test_infer_task_follows_the_recipe_when_it_sets_the_kind():
    out = _infer((64,), RNG.random((30, 64)), spec=TaskSpec(kind="regression"))
    assert out.kind == "regression" and out.how == "set in the recipe"


def test_infer_task_reads_image_shaped_targets_as_regression():
    assert _infer((8, 8, 1), RNG.random((20, 8, 8, 1))).kind == "regression"


def test_infer_task_refuses_zero_one_targets_for_one_unit():
    with pytest.raises(InputError, match="binary classifier or a regression"):
        _infer((1,), RNG.integers(0, 2, 40))


def test_infer_task_refuses_targets_that_fit_nothing():
    with pytest.raises(InputError, match="fits neither"):
        _infer((10,), RNG.random((30, 3)))


def test_infer_task_refuses_recipe_outputs_the_model_lacks():
    with pytest.raises(ConfigError, match="nope"):
        _infer((10,), RNG.integers(0, 10, 5), spec=TaskSpec(outputs={"nope": "regression"}))


def test_prepare_targets_turns_one_hot_into_labels_and_shapes_regression_targets():
    task = Task(outputs=(OutputTask("c", "classification", (3,), num_classes=3),
                         OutputTask("r", "regression", (1,))))
    labels, values = prepare_targets(task, [np.eye(3)[[0, 2, 1]], np.array([0.5, 1.5, 2.5])], 3, "d",
                                     ["y/c", "y/r"])
    assert labels.tolist() == [0, 2, 1] and values.shape == (3, 1) and values.dtype == np.float32


def test_task_evaluate_prefixes_metrics_with_the_output_of_a_multi_output_model():
    task = Task(outputs=(OutputTask("c", "classification", (2,), num_classes=2),
                         OutputTask("r", "regression", (1,))))
    scores, values = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1.0], [3.0]])
    got = task.evaluate([scores, values], [np.array([0, 0]), np.array([[1.0], [2.0]])], [scores, values])
    assert got["c/accuracy"] == 0.5 and got["r/mse"] == 0.5 and got["r/max_abs_error"] == 1.0
    assert got["r/mae_vs_baseline"] == 0.0 and task.primary == "c/accuracy"


def test_metric_drop_is_how_much_worse_in_either_direction():
    base = {"accuracy": figure(0.9, "fraction", "x"), "mse": figure(0.10, "u", "x")}
    new = {"accuracy": figure(0.85, "fraction", "x"), "mse": figure(0.13, "u", "x")}
    assert metric_drop(base, new, "accuracy") == (pytest.approx(0.05), "higher")
    assert metric_drop(base, new, "mse") == (pytest.approx(0.03), "lower")


def _records(**values):
    base = ArtifactRecord("baseline.keras", "keras", "float32",
                          measurements={k: figure(v[0], "u", "x") for k, v in values.items()})
    dep = ArtifactRecord("int8.tflite", "tflite", "int8",
                         measurements={k: figure(v[1], "u", "x") for k, v in values.items()})
    return base, dep


def test_quality_verdicts_judge_max_metric_drop_on_the_task_metric():
    task = Task(outputs=(OutputTask("r", "regression", (4,)),))
    base, dep = _records(mse=(0.10, 0.16))
    (verdict,) = quality_verdicts(Budgets(max_metric_drop=0.05), task, base, dep)
    assert verdict.figure == "mse" and verdict.verdict == "fail" and verdict.value == pytest.approx(0.06)


@pytest.mark.parametrize("mse, verdict, value", [((0.10, 0.109), "pass", 0.09), ((0.10, 0.16), "fail", 0.6),
                                                 ((0.10, 0.08), "pass", -0.2), ((0.0, 0.01), "fail", None),
                                                 ((0.0, 0.0), "pass", 0.0)])
def test_quality_verdicts_judge_max_metric_rel_drop_as_a_fraction_of_the_baseline(mse, verdict, value):
    task = Task(outputs=(OutputTask("r", "regression", (4,)),))
    base, dep = _records(mse=mse)
    (v,) = quality_verdicts(Budgets(max_metric_rel_drop=0.1), task, base, dep)
    assert (v.name, v.figure, v.verdict) == ("max_metric_rel_drop", "mse", verdict)
    assert v.value == (None if value is None else pytest.approx(value))


def test_every_bundled_target_bounds_a_regression_s_quality():
    from edgeprune.targets import available_targets, load_target

    task = Task(outputs=(OutputTask("r", "regression", (4,)),))
    base, dep = _records(mse=(0.10, 0.16))
    for name in available_targets():
        budgets = load_target(name).budgets
        assert budget_notes(budgets, task, name) == []
        assert any(v.verdict == "fail" for v in quality_verdicts(budgets, task, base, dep)), name


def test_quality_verdicts_are_not_measured_without_a_reference():
    task = Task(outputs=(OutputTask("c", "classification", (3,), num_classes=3),))
    _, dep = _records(accuracy=(0.9, 0.9))
    (verdict,) = quality_verdicts(Budgets(max_accuracy_drop=0.01), task, None, dep)
    assert verdict.verdict == "not_measured" and "--reference" in verdict.note


def test_budget_notes_say_max_accuracy_drop_does_not_apply_to_a_regression():
    task = Task(outputs=(OutputTask("r", "regression", (4,)),))
    (note,) = budget_notes(Budgets(max_accuracy_drop=0.01), task, "host")
    assert "does not apply" in note and "max_metric_drop" in note


def test_check_budget_metric_refuses_a_metric_the_task_lacks():
    task = Task(outputs=(OutputTask("r", "regression", (4,)),))
    with pytest.raises(ConfigError, match="accuracy"):
        check_budget_metric(Budgets(max_metric_drop=0.1, metric="accuracy"), task, "target t")


def test_load_metric_needs_a_stated_direction(tmp_path, monkeypatch):
    (tmp_path / "my_metric.py").write_text("def iou(y_true, y_pred):\n    return 0.5\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--metric-direction"):
        load_metric("my_metric:iou", None)
    metric = load_metric("my_metric:iou", "higher")
    assert metric.name == "iou" and metric.direction == "higher" and metric.fn(None, None) == 0.5
