"""Progress lines: elapsed time on each, stages announced only when slow, epochs reported."""

import re
import time

from edgeprune import progress
from edgeprune.progress import LINE_PREFIX, Reporter, activate, keras_callbacks, stage


def _reporter():
    lines = []
    return Reporter(sink=lines.append, tty=False), lines


def test_reporter_prefixes_elapsed_seconds():
    rep, lines = _reporter()
    rep("hello")
    assert re.match(LINE_PREFIX + "hello$", lines[0])


def test_stage_is_silent_when_fast():
    rep, lines = _reporter()
    with activate(rep), stage("baseline"):
        pass
    assert lines == []


def test_stage_announces_and_times_itself_when_slow(monkeypatch):
    monkeypatch.setattr(progress, "ANNOUNCE_AFTER_S", 0.05)
    rep, lines = _reporter()
    with activate(rep), stage("load"):
        time.sleep(1.05)
    assert [line.split("] ", 1)[1] for line in lines][0] == "load ..."
    assert re.search(r"load: done in 1\.\ds$", lines[-1])


def test_keras_callbacks_report_each_epoch_with_loss_and_metric(make_tiny_cnn, tiny_data):
    from edgeprune.compress import training

    rep, lines = _reporter()
    model = make_tiny_cnn()
    with activate(rep):
        training.fit(model, tiny_data, epochs=2, batch_size=64, learning_rate=1e-3, phase="prune",
                     history={})
    epochs = [line for line in lines if "prune epoch" in line]
    assert len(epochs) == 2 and re.search(r"prune epoch 2/2: loss [\d.]+, accuracy [\d.]+; val_loss", epochs[1])


def test_keras_callbacks_empty_without_reporter():
    assert keras_callbacks("prune") == []
