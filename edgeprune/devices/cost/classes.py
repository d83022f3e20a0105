"""The instruction classes the counting plugin (``devices/plugin/insn_count.c``) reports,
in its order. Kept free of imports so that the target profiles' schema can check
``[calibration].cycles_per_class`` keys without loading anything else."""

CLASSES = ("simd_int_mac", "simd_fp_mac", "simd_other", "simd_load", "simd_store", "load", "store",
           "branch", "scalar")
