"""edgeprune: compress, export and validate a Keras model for an edge device in one command."""

import os

__version__ = "0.1.0"

# ONNX Runtime 1.2x+ writes telemetry files (~/.cache/Microsoft/DeveloperTools/.onnxruntime/)
# unless this is set before its first session; a run writes only under --out and the cache.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__all__ = ["__version__", "export", "check", "bench", "validate", "Result", "run_export", "ExportOptions",
           "run_validate", "ValidateOptions", "load_target", "EdgepruneError"]


def __dir__():
    return sorted(set(globals()) | set(__all__))


def __getattr__(name):  # lazy: importing edgeprune must not import TensorFlow
    if name in ("export", "check", "bench", "validate", "Result"):   # the Python API (edgeprune/api.py)
        from . import api

        return getattr(api, name)
    if name in ("run_export", "ExportOptions"):
        from . import pipeline

        return getattr(pipeline, name)
    if name in ("run_validate", "ValidateOptions"):
        from . import validate_external

        return getattr(validate_external, name)
    if name == "load_target":
        from .targets import load_target

        return load_target
    if name == "EdgepruneError":
        from .errors import EdgepruneError

        return EdgepruneError
    raise AttributeError(name)
