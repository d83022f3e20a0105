"""Data sources: an .npz with one target array per output, image class folders, a loader;
streamed data stays on disk and Keras reads it in batches."""

import numpy as np
import pytest

from edgeprune.datasets import finish, load_dataset, read_data
from edgeprune.datasets.images import plan_splits
from edgeprune.datasets.keras_io import fit_arguments, predict
from edgeprune.datasets.spec import DataSpec
from edgeprune.errors import ConfigError, InputError
from edgeprune.recipe import Recipe
from edgeprune.tasks import OutputTask, Task
from edgeprune.types import ModelSignature, OutputSignature

IMAGE_SIG = ModelSignature((8, 8, 1), "float32", (OutputSignature("logits", (3,)),))


def _write_pngs(root, counts, size=8):
    import edgeprune.keras_env as keras_env

    tf = keras_env.tf()
    rng = np.random.default_rng(0)
    for label, n in enumerate(counts):
        for i in range(n):
            pixels = np.full((size, size, 1), 40 * label, np.uint8) + rng.integers(0, 20, (size, size, 1),
                                                                                      dtype=np.uint8)
            path = root / f"class_{label}" / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tf.io.encode_png(pixels).numpy())


def test_read_npz_takes_one_target_array_per_output_of_a_multi_output_model(tmp_path):
    sig = ModelSignature((4,), "float32", (OutputSignature("label", (3,)), OutputSignature("size", (1,))))
    x = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, x_test=x[:5], **{"y_train/label": np.arange(20) % 3,
             "y_train/size": x[:, :1], "y_test/label": np.arange(5) % 3, "y_test/size": x[:5, :1]})
    data = load_dataset(tmp_path / "d.npz", sig, Recipe())
    assert data.task.multi and [o.kind for o in data.task.outputs] == ["classification", "regression"]
    labels, sizes = data.y_train
    assert labels.dtype == np.int64 and sizes.shape == (18, 1) and len(data.x_val) == 2


def test_read_npz_names_missing_target_keys_of_a_multi_output_model(tmp_path):
    sig = ModelSignature((4,), "float32", (OutputSignature("a", (3,)), OutputSignature("b", (1,))))
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 4)), y_train=np.zeros(4), x_test=np.zeros((2, 4)),
             y_test=np.zeros(2))
    with pytest.raises(InputError, match="y_train/a"):
        read_data(tmp_path / "d.npz", sig, DataSpec())


def test_image_folders_need_the_pixel_scaling_stated(tmp_path):
    _write_pngs(tmp_path, [3, 3])
    with pytest.raises(ConfigError, match="scale"):
        read_data(tmp_path, IMAGE_SIG, DataSpec())


def test_plan_splits_is_the_same_for_the_same_seed_and_keeps_classes_sorted(tmp_path):
    _write_pngs(tmp_path, [10, 10, 10])
    spec = DataSpec(scale=1 / 255, split_seed=3)
    a, classes, layout = plan_splits(tmp_path, spec)
    b, _, _ = plan_splits(tmp_path, spec)
    assert classes == ["class_0", "class_1", "class_2"] and "seed 3" in layout
    assert a == b and {len(a[s][0]) for s in ("train", "val", "test")} == {21, 3, 6}
    assert not set(a["train"][0]) & set(a["test"][0])


def test_image_folders_with_train_and_test_are_read_scaled_and_streamed(tmp_path):
    for split, n in (("train", [6, 6, 6]), ("test", [2, 2, 2])):
        (tmp_path / split).mkdir()
        _write_pngs(tmp_path / split, n, size=16)  # resized to the model's 8x8
    raw = read_data(tmp_path, IMAGE_SIG, DataSpec(scale=1 / 255, validation_fraction=0.2))
    assert isinstance(raw.x["train"], np.memmap) and raw.x["train"].shape == (14, 8, 8, 1)
    assert len(raw.x["val"]) == 4 and raw.x["test"].shape == (6, 8, 8, 1)
    assert 0.0 <= raw.x["test"].min() and raw.x["test"].max() <= 1.0
    assert raw.y["test"][0].tolist() == [0, 0, 1, 1, 2, 2]
    assert raw.settings["color_mode"] == "grayscale" and raw.settings["scale"] == pytest.approx(1 / 255)


def test_image_folders_refuse_a_class_count_unlike_the_model(tmp_path):
    _write_pngs(tmp_path, [3, 3])
    with pytest.raises(InputError, match=r"found 2 class folders \(class_0, class_1\), the model has 3 outputs"):
        read_data(tmp_path, IMAGE_SIG, DataSpec(scale=1 / 255))


def test_loader_streams_batched_and_unbatched_tf_data_to_disk(tmp_path):
    import edgeprune.keras_env as keras_env

    tf = keras_env.tf()
    x = np.random.default_rng(0).random((50, 8, 8, 1)).astype(np.float32)
    y = np.arange(50) % 3

    def load():
        return {"train": tf.data.Dataset.from_tensor_slices((x[:40], y[:40])),
                "test": tf.data.Dataset.from_tensor_slices((x[40:], y[40:])).batch(4)}

    raw = read_data(load, IMAGE_SIG, DataSpec(batch_size=16))
    assert isinstance(raw.x["train"], np.memmap) and np.array_equal(raw.x["train"], x[:40])
    assert np.array_equal(raw.y["test"][0], y[40:]) and raw.kind == "loader" and raw.sha256
    again = read_data(load, IMAGE_SIG, DataSpec(batch_size=16))
    assert again.sha256 == raw.sha256


def test_loader_that_returns_no_splits_is_exit_2():
    with pytest.raises(InputError, match="'train' and 'test'"):
        read_data(lambda: [1, 2], IMAGE_SIG, DataSpec())


def test_streamed_data_fits_from_disk_in_shuffled_batches(keras, tmp_path):
    x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    from edgeprune.datasets import RawData

    raw = RawData(x={"train": mm, "test": mm[:8]}, y={"train": [np.arange(40) % 2], "test": [np.arange(8) % 2]},
                  names={"train": ["y_train"], "test": ["y_test"]}, source="t", sha256="s", where="t", kind="loader")
    data = finish(raw, Task(outputs=(OutputTask("out", "classification", (2,), num_classes=2),)))
    assert data.streamed
    args = fit_arguments(data, batch_size=8, seed=1)
    batches = args["x"]
    first_epoch = np.concatenate([batches[i][1] for i in range(len(batches))])
    batches.on_epoch_end()
    second_epoch = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert len(batches) == 5 and batches[0][0].shape == (8, 4)
    assert sorted(first_epoch) == sorted(second_epoch) and list(first_epoch) != list(second_epoch)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(epochs=1, verbose=0, **args)
    (out,) = predict(model, data.x_test)
    assert out.shape == (8, 2)
