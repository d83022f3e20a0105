import gzip

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

from edgeprune.measure.latency import latency_stats, spread_of
from edgeprune.measure.metrics import classification_metrics
from edgeprune.measure.size import sizes


def test_classification_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    scores = rng.normal(size=(200, 5))
    scores[np.arange(200), labels] += rng.normal(1.0, 1.0, 200)
    pred = scores.argmax(1)
    m = classification_metrics(scores, labels, 5, reference_top1=labels)
    assert np.isclose(m["accuracy"], np.mean(pred == labels))
    assert np.isclose(m["precision_macro"], precision_score(labels, pred, average="macro"))
    assert np.isclose(m["recall_macro"], recall_score(labels, pred, average="macro"))
    assert np.isclose(m["f1_macro"], f1_score(labels, pred, average="macro"))
    assert np.isclose(m["agreement"], m["accuracy"])


def test_latency_stats_median_and_percentiles():
    s = latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["value"] == 3.0 and s["min"] == 1.0 and s["max"] == 100.0 and s["n"] == 5
    assert s["p90"] > 4.0


def test_spread_of_identical_counts_is_zero():
    assert spread_of([10, 10, 10]) == 0.0
    assert spread_of([9, 10, 11]) == 0.2


def test_sizes_gzip_is_reproducible(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(1000) + b"abc" * 100)
    s = sizes(path)
    assert s["size_bytes"] == 1300
    assert s["gzip_bytes"] == len(gzip.compress(path.read_bytes(), 9, mtime=0)) < 1300
    assert sizes(path) == s
