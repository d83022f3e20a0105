"""A target's budgets judged on the deployed artifact's measured figures."""

from __future__ import annotations

from pathlib import Path

from .report.schema import ArtifactRecord, BudgetVerdict
from .targets import TargetProfile



BUDGET_FIGURES = {
    "max_size_bytes": "size_bytes",
    "max_gzip_bytes": "gzip_bytes",
    "max_latency_ms": "latency_ms",
    "max_arena_bytes": "arena_bytes",
    "max_flash_bytes": "flash_bytes",
    "max_ram_bytes": "ram_bytes",
    "max_instructions_per_invoke": "instructions_per_invoke",
}


def judge_budgets(profile: TargetProfile, deploy: ArtifactRecord, baseline: ArtifactRecord | None,
                  deploy_path: Path, task) -> list[BudgetVerdict]:
    out = []
    budgets = profile.budgets
    for name, fig_name in BUDGET_FIGURES.items():
        limit = getattr(budgets, name)
        if limit is None:
            continue
        fig = deploy.measurements.get(fig_name)
        note = ""
        if name == "max_latency_ms" and profile.device.kind == "qemu":
            fig = deploy.measurements.get("latency_estimate_ms")
            note = "estimated from emulated instruction counts"
        elif name == "max_latency_ms" and profile.device.kind == "tflm":
            fig = deploy.measurements.get("latency_estimate_ms")
            note = ("estimated: instructions counted on the emulated core x calibrated cycles per "
                    "instruction" if fig else "no estimate: needs device.core, device.clock_mhz and "
                    "a calibration for that core")
        elif fig is None and name == "max_latency_ms" and "host_latency_ms" in deploy.measurements:
            note = "no latency was measured on the target (host_latency_ms is this machine's)"
        if fig is None:
            out.append(BudgetVerdict(name, fig_name, deploy.name, limit, None, "not_measured",
                                     note or "this target's runner does not measure it"))
            continue
        value = fig["value"]
        out.append(BudgetVerdict(name, fig_name, deploy.name, limit, value,
                                 "pass" if value <= limit else "fail", note))
    if profile.compatibility is not None and deploy.format == "tflite":
        from .compat import check_compatibility

        violations = check_compatibility(deploy_path, profile.compatibility)
        out.append(BudgetVerdict("compatibility", "violations", deploy.name, 0, len(violations),
                                 "fail" if violations else "pass", "; ".join(violations) or
                                 "full int8, I/O types, ops and shapes as the rules require"))
    from .tasks.budget import quality_verdicts

    return out + quality_verdicts(budgets, task, baseline, deploy)
