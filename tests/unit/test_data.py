import numpy as np
import pytest

from edgeprune.data import load_npz
from edgeprune.errors import InputError

SHAPE = (8, 8, 1)


def _save(tmp_path, **arrays):
    base = dict(x_train=np.zeros((20, *SHAPE), np.float32), y_train=np.arange(20) % 10,
                x_test=np.zeros((5, *SHAPE), np.float32), y_test=np.arange(5))
    base.update(arrays)
    base = {k: v for k, v in base.items() if v is not None}
    path = tmp_path / "data.npz"
    np.savez(path, **base)
    return path


def test_load_npz_splits_validation_from_train(tmp_path):
    data = load_npz(_save(tmp_path), input_shape=SHAPE, num_classes=10)
    assert len(data.x_train) == 18 and len(data.x_val) == 2 and len(data.x_test) == 5
    assert data.x_train.dtype == np.float32


def test_load_npz_names_missing_arrays(tmp_path):
    with pytest.raises(InputError, match="y_test"):
        load_npz(_save(tmp_path, y_test=None), input_shape=SHAPE, num_classes=10)


def test_load_npz_refuses_pickled_objects(tmp_path):
    path = _save(tmp_path, y_test=np.array([{"a": 1}] * 5, dtype=object))
    with pytest.raises(InputError, match="pickled"):
        load_npz(path, input_shape=SHAPE, num_classes=10)


def test_load_npz_names_shape_mismatch(tmp_path):
    path = _save(tmp_path, x_test=np.zeros((5, 4, 4, 1), np.float32))
    with pytest.raises(InputError) as err:
        load_npz(path, input_shape=SHAPE, num_classes=10)
    assert "x_test" in str(err.value) and "(N, 8, 8, 1)" in str(err.value)


def test_load_npz_rejects_nan(tmp_path):
    x = np.zeros((20, *SHAPE), np.float32)
    x[3, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        load_npz(_save(tmp_path, x_train=x), input_shape=SHAPE, num_classes=10)


def test_load_npz_rejects_labels_out_of_range(tmp_path):
    with pytest.raises(InputError, match=r"labels in \[0, 9\]"):
        load_npz(_save(tmp_path, y_test=np.array([0, 1, 2, 3, 12])), input_shape=SHAPE, num_classes=10)


def test_load_npz_rejects_truncated_file(tmp_path):
    path = _save(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="cannot be read"):
        load_npz(path, input_shape=SHAPE, num_classes=10)


def test_load_npz_accepts_one_hot_labels(tmp_path):
    y = np.eye(10)[np.arange(20) % 10]
    data = load_npz(_save(tmp_path, y_train=y), input_shape=SHAPE, num_classes=10)
    assert data.y_train[:3].tolist() == [0, 1, 2]


def test_load_npz_refuses_header_larger_than_its_bytes_without_allocating(tmp_path):
    path = _save(tmp_path)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"'shape': (20, 8, 8, 1)")
    raw[at:at + 22] = b"'shape': (9999999999,)"  # same length: the archive stays readable
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="declares shape"):
        load_npz(path, input_shape=SHAPE, num_classes=10)


def test_load_npz_refuses_values_beyond_float32(tmp_path):
    x = np.zeros((20, *SHAPE))
    x[0, 0, 0, 0] = 1e39
    with pytest.raises(InputError, match="beyond float32's range"):
        load_npz(_save(tmp_path, x_train=x), input_shape=SHAPE, num_classes=10)
