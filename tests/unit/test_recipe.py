import pytest

from edgeprune.errors import ConfigError
from edgeprune.recipe import Recipe, load_recipe


def test_recipe_artifact_names_skip_onnx_for_tflite_only_precisions():
    names = Recipe().artifact_names()
    assert "int8.onnx" in names and "float32.onnx" in names
    assert "dynamic.onnx" not in names and "float16.onnx" not in names


def test_load_recipe_replaces_sections_of_base(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('prune = { final_sparsity = 0.5 }\nquantize = ["int8"]\n')
    recipe = load_recipe(path, base=Recipe())
    assert recipe.prune.final_sparsity == 0.5
    assert recipe.quantize == ("int8",)
    assert recipe.formats == ("tflite", "onnx")


def test_load_recipe_rejects_deploy_not_produced(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('quantize = ["float32"]\n')
    with pytest.raises(ConfigError) as err:
        load_recipe(path, base=Recipe())
    assert "deploy" in str(err.value) and str(path) in str(err.value)


def test_load_recipe_rejects_block_structure_without_block_size(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('prune = { structure = "block" }\n')
    with pytest.raises(ConfigError, match="block_size"):
        load_recipe(path)


def test_load_recipe_rejects_sparsity_out_of_range(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('prune = { final_sparsity = 1.5 }\n')
    with pytest.raises(ConfigError, match="prune.final_sparsity"):
        load_recipe(path)


@pytest.mark.parametrize("text,field", [
    ("finetune = { learning_rate = inf }\n", "finetune.learning_rate"),
    ("finetune = { learning_rate = nan }\n", "finetune.learning_rate"),
    ("regularize = { strength = -inf }\n", "regularize.strength"),
    ("seed = -1\n", "seed"),
    ("seed = 4294967296\n", "seed"),
    ("finetune = { epochs = 9223372036854775807 }\n", "finetune.epochs"),
    ("prune = { structure = \"block\", block_size = [99999999999, 1] }\n", "prune.block_size"),
])
def test_load_recipe_rejects_numbers_out_of_range_or_not_finite(tmp_path, text, field):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_recipe(path, base=Recipe())
    assert field in str(err.value) and str(path) in str(err.value)


def test_load_recipe_accepts_largest_seed(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("seed = 4294967295\n")
    assert load_recipe(path, base=Recipe()).seed == 2**32 - 1
