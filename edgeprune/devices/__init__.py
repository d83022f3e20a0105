"""Devices: where a runtime runs. One module per kind, one line in ``_FACTORIES``."""

from __future__ import annotations

from importlib import import_module

from ..errors import ConfigError
from .base import Device, RunRequest, RunResult

# kind -> "module:factory"; a factory takes the target profile and returns a Device.
_FACTORIES = {
    "local": "edgeprune.devices.local:LocalDevice",
    "qemu": "edgeprune.devices.qemu:QemuDevice",
    "ssh": "edgeprune.devices.ssh:SshDevice",
    "tflm": "edgeprune.runtimes.tflm:TflmDevice",
}


def device_for(profile) -> Device:
    """The device that validates artifacts for ``profile``."""
    kind = profile.device.kind
    if kind not in _FACTORIES:
        raise ConfigError(f"device.kind = {kind!r} has no runner", where=f"target {profile.name}",
                          expected=f"one of {', '.join(sorted(_FACTORIES))}")
    module, name = _FACTORIES[kind].split(":")
    factory = getattr(import_module(module), name)
    return factory(profile)


__all__ = ["Device", "RunRequest", "RunResult", "device_for"]
