"""The compressed model written back as a Keras 3 ``.keras`` file, proven to match the
exported float32 TFLite file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..output import sha256_file
from ..report.schema import ArtifactRecord, BudgetVerdict, figure
from ..types import Artifact
from .keras3 import WRITEBACK_RTOL, WRITEBACK_SAMPLES

FILE = "model_compressed.keras"
NAME = "compressed.keras3"


def write_back_keras3(bridge, compressed, artifacts: list[Artifact], data, staging: Path, log):
    """Write ``compressed.model`` as a Keras 3 file in ``staging``, reload it in Keras 3, and
    compare its outputs on the first test samples with float32.tflite's (or, when the recipe
    exports no float32 TFLite, with the compressed tf_keras model's)."""
    from ..datasets.keras_io import predict
    from ..devices.local import LocalDevice
    from ..devices.base import RunRequest
    from ..runtimes.outputs import split_outputs

    x = np.asarray(data.x_test[:WRITEBACK_SAMPLES])
    out = staging / FILE
    theirs, version = bridge.write_back(compressed.model, out, x)
    names = [o.name for o in data.task.outputs]
    float_tflite = next((a for a in artifacts if a.name == "float32.tflite"), None)
    if float_tflite is not None:
        run = LocalDevice().run(float_tflite.path, x, RunRequest(engine="litert", threads=1, warmup=0,
                                                                 repeats=0))
        ours = split_outputs(run.outputs, run.extra.get("outputs_layout"), names, str(float_tflite.path))
        against = "float32.tflite"
    else:
        ours, against = predict(compressed.model, x), "compressed.keras (no float32 TFLite exported)"
    diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(theirs, ours))
    scale = max([1.0] + [float(np.max(np.abs(b))) for b in ours if b.size])
    tol = WRITEBACK_RTOL * scale
    verdict = "pass" if diff <= tol else "fail"
    log(f"export success, saved the compressed model as {FILE} (Keras {version}): it loads in Keras 3 "
        f"and matches {against}, max |difference| {diff:.2g} on {len(x)} test samples")
    art = Artifact(name=NAME, path=out, format="keras", precision="float32", encoding="dense",
                   sha256=sha256_file(out), parent="compressed.keras",
                   settings={"saved_by": f"keras {version}", "compared_with": against,
                             "samples": int(len(x))})
    rec = ArtifactRecord(name=NAME, file=FILE, format="keras", precision="float32", sha256=art.sha256,
                         parent=art.parent, settings=art.settings, measurements={
                             "max_abs_diff": figure(diff, "output units", f"keras {version} vs {against}",
                                                    tolerance=tol, samples=int(len(x)))})
    check = BudgetVerdict("keras3_parity", "max_abs_diff", NAME, tol, diff, verdict,
                          f"the Keras 3 file's outputs vs {against}, {len(x)} test samples, tolerance "
                          f"{WRITEBACK_RTOL:g} x max(1, max |output|)")
    return art, rec, check
