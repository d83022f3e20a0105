"""The one place that selects Keras 2 (tf_keras) and imports TensorFlow.

tensorflow-model-optimization works with Keras 2 only, so ``TF_USE_LEGACY_KERAS``
must be set before TensorFlow is first imported. Every module that needs
TensorFlow calls :func:`tf`, :func:`keras` or :func:`tfmot` instead of importing
it at module level; that keeps ``edgeprune --help`` fast.
"""

from __future__ import annotations

import os
from functools import lru_cache
from types import ModuleType

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@lru_cache(maxsize=None)
def tf() -> ModuleType:
    import warnings

    # tf_keras reads and writes KERAS_HOME/keras.json (default ~/.keras) when imported: keep it
    # in edgeprune's cache, so a user's keras.json cannot change results and nothing lands in ~.
    from .reference import cache_dir

    os.environ["KERAS_HOME"] = str(cache_dir() / "keras")

    # The converter and tf_keras warn about settings edgeprune chose on purpose
    # (legacy .h5 saving in tests, float I/O around an int8 model); keep the output readable.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(tensorflow|tf_keras)(\.|$)")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    import tensorflow

    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


@lru_cache(maxsize=None)
def keras() -> ModuleType:
    tf()
    import tf_keras

    return tf_keras


@lru_cache(maxsize=None)
def tfmot() -> ModuleType:
    keras()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tensorflow_model_optimization

    return tensorflow_model_optimization


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's kernels deterministic."""
    k = keras()
    k.utils.set_random_seed(seed)
    t = tf()
    try:
        t.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass
