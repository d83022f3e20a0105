"""The emulated boards' latency model: estimate, calibration schema, the fit on published figures."""

import numpy as np
import pytest

from edgeprune.devices.cost import estimate_ms, latency_estimate, thread_factor
from edgeprune.devices.cost.classes import CLASSES
from edgeprune.devices.cost.data import load_counts, load_figures
from edgeprune.devices.cost.fit import fit_all, nnls_relative, sections, write_section
from edgeprune.errors import ConfigError
from edgeprune.targets import Calibration, TargetProfile, load_target


def _calibration(**changes):
    values = {"clock_mhz": 1000.0, "cycles_per_class": {c: 1.0 for c in CLASSES},
              "serial_fraction": 0.2, "name": "test", "error_rel": 0.25, "error_rows": 8,
              "error_how": "max |estimate / published - 1| on 8 figures"}
    values.update(changes)
    return Calibration.model_validate(values)


def test_estimate_ms_weights_each_class_and_scales_with_amdahls_law():
    costs = {c: 1.0 for c in CLASSES} | {"simd_fp_mac": 2.0, "branch": 0.5}
    cal = _calibration(cycles_per_class=costs)
    counts = {c: 0 for c in CLASSES} | {"simd_fp_mac": 1_000_000, "branch": 400_000, "load": 100_000}
    one = (2.0 * 1_000_000 + 0.5 * 400_000 + 100_000) / 1e6      # ms at 1000 MHz
    assert estimate_ms(counts, cal, 1) == pytest.approx(one)
    assert estimate_ms(counts, cal, 4) == pytest.approx(one * (0.2 + 0.8 / 4))
    assert thread_factor(4, 0.0) == 0.25 and thread_factor(4, 1.0) == 1.0


def test_calibration_rejects_unknown_or_missing_class_and_two_costs():
    with pytest.raises(ValueError, match="unknown: fma"):
        _calibration(cycles_per_class={c: 1.0 for c in CLASSES} | {"fma": 1.0})
    with pytest.raises(ValueError, match="missing: branch"):
        _calibration(cycles_per_class={c: 1.0 for c in CLASSES if c != "branch"})
    with pytest.raises(ValueError, match="either cycles_per_class"):
        _calibration(cycles_per_instruction=1.0)


def test_latency_estimate_is_labelled_with_threads_calibration_and_error_band():
    profile = load_target("rpi4")
    counts = {c: 1000 for c in CLASSES}
    fig = latency_estimate([9000, 9000], [counts, counts], profile)
    assert fig["method"] == "estimated" and fig["unit"] == "ms"
    assert fig["threads"] == profile.runtime.threads == 4
    assert fig["calibration"] == profile.calibration.name
    assert fig["error_band"]["rel"] == profile.calibration.error_rel
    assert fig["error_band"]["rows"] == profile.calibration.error_rows >= 6
    assert f"+-{profile.calibration.error_rel:.0%}" in fig["by"] and "4 threads" in fig["by"]
    assert fig["value"] == pytest.approx(estimate_ms(counts, profile.calibration, 4), abs=1e-4)


def test_nnls_relative_keeps_costs_nonnegative():
    a = np.array([[1.0, 1.0], [2.0, 0.5], [1.0, -3.0]])
    x = nnls_relative(a)
    assert np.all(x >= 0)
    assert np.sum((a @ x - 1) ** 2) <= np.sum((a @ np.array([0.5, 0.0]) - 1) ** 2) + 1e-12


def test_bundled_calibrations_are_what_the_fit_writes(tmp_path):
    # The profiles' [calibration] sections come from the fit on the data in the repository,
    # not from hand-typed numbers.
    from edgeprune.targets import targets_dirs

    folder = targets_dirs()[-1]
    for name, section in sections(fit_all()).items():
        copy = tmp_path / f"{name}.toml"
        copy.write_text((folder / f"{name}.toml").read_text())
        write_section(copy, section)
        assert copy.read_text() == (folder / f"{name}.toml").read_text(), name
        TargetProfile.model_validate(load_target(copy).model_dump())


def test_rpi4_fit_meets_the_goal_on_published_64bit_figures():
    fit = fit_all()["rpi4"]
    rows = {(r.figure.model, r.figure.precision): r for r in fit.rows
            if r.figure.os_bits == 64 and r.figure.use in ("fit", "holdout")}
    assert len(rows) == 6 and sum(r.figure.use == "holdout" for r in rows.values()) >= 2
    assert all(abs(r.ratio - 1) <= 0.30 for r in rows.values())
    for model in ("mobilenet_v1", "mobilenet_v2"):    # the board runs int8 faster: so must we
        assert rows[(model, "int8")].estimate_ms < rows[(model, "float32")].estimate_ms


def test_calibration_counts_cover_every_fitted_figure():
    counts = load_counts()["counts"]
    cores = {"rpi3": "cortex-a53", "rpi4": "cortex-a72"}
    for f in load_figures():
        record = counts[f"{f.model}/{f.precision}/{cores[f.board]}"]
        assert sum(record["by_class"].values()) == record["instructions"]


def test_load_figures_names_the_figure_with_a_missing_field(tmp_path):
    path = tmp_path / "figures.toml"
    path.write_text('[[figure]]\nboard = "rpi4"\nms = 3.0\n')
    with pytest.raises(ConfigError, match=r"figure\[0\]"):
        load_figures(path)


def test_one_cpi_calibration_of_a_users_profile_still_estimates_from_totals():
    cal = Calibration.model_validate({"clock_mhz": 1000.0, "cycles_per_instruction": 2.0})
    profile = load_target("rpi4").model_copy(update={"calibration": cal})
    fig = latency_estimate([3_000_000, 3_000_000], None, profile)
    assert fig["value"] == pytest.approx(3_000_000 * 2.0 / 1e6 / 4)
    assert fig["error_band"]["rel"] is None and "error unknown" in fig["by"]
