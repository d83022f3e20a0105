"""The latency model for emulated aarch64 boards: per-class instruction counts under qemu,
cycles per class and a thread curve fitted per board on published figures.

- :mod:`.classes`: the instruction classes the counting plugin reports
- :mod:`.model`: counts -> milliseconds for the profile's thread count
- :mod:`.report`: the report's ``latency_estimate_ms`` figure
- :mod:`.fit` (``python -m edgeprune.devices.cost.fit``): refit, print the error per figure
- :mod:`.data`, :mod:`.mobilenets`, :mod:`.recount`: the published figures and the
  calibration models' counts in ``targets/calibration/``
"""

from .model import describe, estimate_ms, op_estimate_ms, thread_factor
from .report import latency_estimate, median_window
from .weights import weight_bytes

__all__ = ["describe", "estimate_ms", "latency_estimate", "median_window", "op_estimate_ms",
           "thread_factor", "weight_bytes"]
