import pytest

from edgeprune.errors import ConfigError
from edgeprune.targets import TargetProfile, available_targets, load_target


@pytest.mark.parametrize("name", sorted(available_targets()))
def test_every_bundled_target_validates(name):
    profile = load_target(name)
    assert isinstance(profile, TargetProfile)
    assert profile.name == name
    assert profile.recipe.deploy in profile.recipe.artifact_names()


def test_host_target_exists_with_budgets():
    profile = load_target("host")
    assert profile.device.kind == "local"
    assert profile.budgets.max_size_bytes and profile.budgets.max_accuracy_drop is not None


def _write(tmp_path, text, name="board"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


BASE = '''
description = "a board"
arch = "x86_64"
cpu = "x86-64"
[runtime]
engine = "litert"
[device]
kind = "local"
'''


def test_load_target_names_file_and_field_when_key_unknown(tmp_path):
    path = _write(tmp_path, BASE + "[budgets]\nmax_latency = 3.0\n")
    with pytest.raises(ConfigError) as err:
        load_target(path)
    text = str(err.value)
    assert str(path) in text and "budgets.max_latency" in text and "unknown key" in text


def test_load_target_names_field_when_type_wrong(tmp_path):
    path = _write(tmp_path, BASE.replace('engine = "litert"', 'engine = "litert"\nthreads = "four"'))
    with pytest.raises(ConfigError) as err:
        load_target(path)
    assert "runtime.threads" in str(err.value)


def test_load_target_rejects_engine_that_cannot_run_deploy_format(tmp_path):
    path = _write(tmp_path, BASE.replace('engine = "litert"', 'engine = "onnxruntime"'))
    with pytest.raises(ConfigError) as err:
        load_target(path)
    assert "deploy" in str(err.value)


def test_load_target_rejects_name_that_differs_from_file(tmp_path):
    path = _write(tmp_path, 'name = "other"\n' + BASE)
    with pytest.raises(ConfigError, match="file name"):
        load_target(path)


def test_load_target_lists_known_targets_when_name_unknown():
    with pytest.raises(ConfigError) as err:
        load_target("no-such-board")
    assert "host" in str(err.value)


def test_load_target_reports_toml_syntax_error(tmp_path):
    path = _write(tmp_path, "name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_target(path)


@pytest.mark.parametrize("line", ["max_latency_ms = inf", "max_accuracy_drop = nan"])
def test_load_target_rejects_budget_that_is_not_finite(tmp_path, line):
    path = _write(tmp_path, BASE + f"[budgets]\n{line}\n")
    with pytest.raises(ConfigError, match="budgets"):
        load_target(path)
