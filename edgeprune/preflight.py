"""Checks that take seconds and run before any work (loading, fine-tuning, export):
the previous output can be replaced, and the target's device answers."""

from __future__ import annotations

from pathlib import Path

from .targets import TargetProfile


def preflight(profile: TargetProfile, final: Path, log=lambda msg: None) -> None:
    """Raise the ConfigError or DeviceError a run would otherwise meet only at its end."""
    from .devices import device_for
    from .output import check_replaceable

    check_replaceable(Path(final))
    if profile.device.kind in ("local", "rules"):
        return
    device = device_for(profile)
    check = getattr(device, "preflight", None)
    if check is not None:
        found = check()
        log(f"device {device.describe()} answers: " +
            ", ".join(f"{k} {v}" for k, v in (found or {}).items()))
