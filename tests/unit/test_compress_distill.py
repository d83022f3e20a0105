"""finetune.distill: fine-tuning against the source model's outputs as well as the labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgeprune.compress import compress
from edgeprune.compress.distill import DistillTask, distilled
from edgeprune.errors import ConfigError
from edgeprune.recipe import DistillSpec, Recipe, recipe_from_mapping
from edgeprune.tasks import OutputTask, Task
from edgeprune.types import SourceModel


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _expected(labels, teacher_logp, student_logp, alpha, t):
    hard = -student_logp[np.arange(len(labels)), labels]
    pt = np.exp(_log_softmax(teacher_logp / t))
    kl = (pt * (np.log(pt) - _log_softmax(student_logp / t))).sum(axis=1)
    return float(np.mean((1 - alpha) * hard + alpha * t * t * kl))


@pytest.mark.parametrize("softmax", [False, True])
def test_the_loss_is_hintons_mix_of_label_cross_entropy_and_tempered_kl(keras, tiny_data, softmax):
    """The compiled loss matches the formula for logits and for softmax outputs, and the
    ``accuracy`` metric is the labels' accuracy."""
    from conftest import build_tiny_cnn

    teacher = build_tiny_cnn(keras, seed=1)
    student = build_tiny_cnn(keras, seed=2)
    if softmax:
        teacher = keras.Sequential([teacher, keras.layers.Softmax()])
        student = keras.Sequential([student, keras.layers.Softmax()])
    data = distilled(tiny_data, teacher, DistillSpec(alpha=0.6, temperature=3.0), batch_size=64)
    assert data.y_train.shape == (400, 11) and data.y_val.shape == (50, 11)
    np.testing.assert_array_equal(data.y_train[:, 0], tiny_data.y_train)
    x, labels = tiny_data.x_val, tiny_data.y_val
    data.task.compile(student, 1e-3)
    loss, acc = student.evaluate(x, data.y_val, batch_size=len(x), verbose=0)
    out = student.predict(x, verbose=0).astype(np.float64)
    student_logp = np.log(out) if softmax else _log_softmax(out)
    teacher_out = teacher.predict(x, verbose=0).astype(np.float64)
    teacher_logp = np.log(teacher_out) if softmax else _log_softmax(teacher_out)
    assert loss == pytest.approx(_expected(labels, teacher_logp, student_logp, 0.6, 3.0), rel=1e-4)
    assert acc == pytest.approx(float(np.mean(out.argmax(1) == labels)))
    # A student equal to its teacher has no KL term: with alpha 1 the loss is zero.
    DistillTask(1.0, 3.0).compile(teacher, 1e-3)
    assert teacher.evaluate(x, data.y_val, batch_size=len(x), verbose=0)[0] == pytest.approx(0.0, abs=1e-5)


def _source(model):
    return SourceModel(model=model, input_shape=(8, 8, 1), num_classes=10, origin="tiny", sha256="0")


def _recipe(**distill) -> Recipe:
    return recipe_from_mapping({"prune": {"final_sparsity": 0.6}, "finetune": {"epochs": 1, "distill": distill},
                                "seed": 3}, source="test")


def test_compress_distils_every_phase_deterministically_and_leaves_the_source_alone(tiny_cnn, tiny_data):
    before = [w.copy() for w in tiny_cnn.get_weights()]
    recipe = _recipe(alpha=0.5, temperature=2.0)
    logs = []
    first = compress(_source(tiny_cnn), recipe, tiny_data, log=logs.append)
    second = compress(_source(tiny_cnn), recipe, tiny_data)
    assert first.steps[:2] == ["distill(alpha=0.5, temperature=2)", "prune(unstructured)"]
    assert any(line.startswith("distillation:") for line in logs)
    # how often the teacher is right, measured on the packed targets, kept in the notes
    packed = distilled(tiny_data, tiny_cnn, DistillSpec(), 32).y_train
    rate = np.mean(np.argmax(tiny_cnn.predict(tiny_data.x_train, verbose=0), 1) == tiny_data.y_train)
    assert np.mean(np.argmax(packed[:, 1:], 1) == packed[:, 0]) == rate
    assert f"the label for {rate:.1%} of the training samples" in first.notes[0]
    assert set(first.history) >= {"prune.loss", "prune.accuracy", "prune.val_accuracy"}
    assert 0.0 <= first.history["prune.val_accuracy"][0] <= 1.0
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for old, now in zip(before, tiny_cnn.get_weights()):
        np.testing.assert_array_equal(old, now)
    plain = compress(_source(tiny_cnn), recipe.model_copy(update={"finetune": recipe.finetune.model_copy(
        update={"distill": None})}), tiny_data)
    assert not any(np.array_equal(a, b) for a, b in zip(first.model.get_weights()[:1],
                                                         plain.model.get_weights()[:1]))


def test_distillation_refuses_what_it_cannot_distil(tiny_cnn, tiny_data, tmp_path):
    spec = DistillSpec()
    regression = dataclasses.replace(tiny_data, task=Task(outputs=(OutputTask("r", "regression", (10,)),)))
    with pytest.raises(ConfigError) as err:
        distilled(regression, tiny_cnn, spec, 32)
    assert err.value.where == "recipe.finetune.distill" and "r (regression)" in str(err.value)
    two = Task(outputs=(OutputTask("a", "classification", (10,), num_classes=10),
                        OutputTask("b", "classification", (10,), num_classes=10)))
    with pytest.raises(ConfigError, match="one classification output"):
        distilled(dataclasses.replace(tiny_data, task=two), tiny_cnn, spec, 32)
    path = tmp_path / "x.npy"
    np.save(path, tiny_data.x_train)
    streamed = dataclasses.replace(tiny_data, x_train=np.load(path, mmap_mode="r"))
    with pytest.raises(ConfigError, match="in memory"):
        distilled(streamed, tiny_cnn, spec, 32)
    with pytest.raises(ConfigError, match="integer class labels"):
        distilled(dataclasses.replace(tiny_data, y_train=np.zeros((400, 10), np.float32)), tiny_cnn, spec, 32)
    n = len(tiny_data.y_train)
    for bad in (np.full(n, 0.5, np.float32), np.full(n, 10), np.full(n, -1)):   # not a class of 10
        with pytest.raises(ConfigError, match=r"integer class labels in 0\.\.9"):
            distilled(dataclasses.replace(tiny_data, y_train=bad), tiny_cnn, spec, 32)
    from edgeprune.compress.distill import _pack

    with pytest.raises(ConfigError, match="one output unit per class"):              # a sigmoid unit
        _pack(np.zeros(4), np.zeros((4, 1)))


@pytest.mark.parametrize("bad", [{"alpha": 0.0}, {"alpha": 1.5}, {"temperature": 0}, {"beta": 1}])
def test_recipe_rejects_a_bad_distill_table(bad):
    with pytest.raises(ConfigError):
        _recipe(**bad)
