"""Classification metrics computed from a runtime's outputs on the held-out split."""

from __future__ import annotations

import numpy as np


def classification_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: int,
                           reference_top1: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, macro precision/recall/F1 and (optionally) top-1 agreement with a reference.

    ``scores`` is (N, num_classes); classes absent from both labels and predictions
    are left out of the macro averages, as scikit-learn does with ``labels=None``.
    """
    pred = np.argmax(scores.reshape(len(scores), -1), axis=1)
    labels = np.asarray(labels).reshape(-1)
    out = {"accuracy": float(np.mean(pred == labels))}
    precisions, recalls, f1s = [], [], []
    for c in range(num_classes):
        tp = int(np.sum((pred == c) & (labels == c)))
        fp = int(np.sum((pred == c) & (labels != c)))
        fn = int(np.sum((pred != c) & (labels == c)))
        if tp + fp + fn == 0:
            continue
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(p)
        recalls.append(r)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    out["precision_macro"] = float(np.mean(precisions))
    out["recall_macro"] = float(np.mean(recalls))
    out["f1_macro"] = float(np.mean(f1s))
    if reference_top1 is not None:
        out["agreement"] = float(np.mean(pred == reference_top1))
    return out


def regression_metrics(outputs: np.ndarray, targets: np.ndarray,
                       reference: np.ndarray | None = None) -> dict[str, float]:
    """Mean squared error, mean absolute error and the largest absolute error over every
    value of every sample (an autoencoder's reconstruction error is the same three), and
    (optionally) the mean absolute difference from a reference's outputs."""
    pred = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    true = np.asarray(targets, np.float64).reshape(len(targets), -1)
    err = pred - true
    out = {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))),
           "max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0}
    if reference is not None:
        ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
        out["mae_vs_baseline"] = float(np.mean(np.abs(pred - ref)))
    return out
