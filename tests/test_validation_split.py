"""``data.validation``: a seeded stratified hold-out from the training set, tested on instead of
the test set, and said so in the run file."""

from __future__ import annotations

import numpy as np
import pytest

from neurosleep.data import hold_out_validation, load_dataset, split_stream
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run


def rows(x: np.ndarray) -> list[bytes]:
    return sorted(r.tobytes() for r in x)


def test_validation_is_stratified_disjoint_and_from_the_training_set():
    data = load_dataset("mnist5k", seed=1)  # 400 training, 100 test images per class
    val = hold_out_validation(data, 0.1, seed=1)
    assert np.bincount(val.y_test).tolist() == [40] * 10  # round(0.1 · 400) of each class
    assert np.bincount(val.y_train).tolist() == [360] * 10
    # train ∪ validation is exactly the original training set (as a multiset of rows + labels)
    joined = np.concatenate([val.x_train, val.x_test]), np.concatenate([val.y_train, val.y_test])
    assert rows(np.column_stack(joined)) == rows(np.column_stack([data.x_train, data.y_train]))
    # disjoint: no validation image is a training image (MNIST 5k holds no duplicate images)
    assert not set(rows(val.x_test)) & set(rows(val.x_train))
    # and the test set is gone: no validation image comes from it
    assert not set(rows(val.x_test)) & set(rows(data.x_test))


def test_validation_is_deterministic_with_the_seed():
    data = load_dataset("digits", seed=0)
    a, b = hold_out_validation(data, 0.2, seed=4), hold_out_validation(data, 0.2, seed=4)
    c = hold_out_validation(data, 0.2, seed=5)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert rows(a.x_test) != rows(c.x_test)
    # another seed draws other samples from the same pool
    assert 0 < len(set(rows(a.x_test)) & set(rows(c.x_test))) < len(a.x_test)


def test_streams_take_the_validation_samples_as_their_test_sets():
    val = hold_out_validation(load_dataset("digits", seed=0), 0.25, seed=0)
    stream = split_stream(val, classes_per_task=2)
    assert sum(len(t.y_test) for t in stream.tasks) == len(val.y_test)
    for task in stream.tasks:
        assert set(np.unique(task.y_test)) == set(task.classes.tolist())


@pytest.mark.torch
@pytest.mark.usefixtures("one_torch_thread")
def test_run_file_says_it_was_evaluated_on_validation(write_protocol, tmp_path):
    def protocol(validation):
        data = {"dataset": "digits", "stream": "split", "scenario": "class"}
        return {
            "format_version": 1,
            "name": "val" if validation else "test",
            "seed": 2,
            "model": {"kind": "mlp", "name": "tiny", "layers": [64, 32, 10], "bias": False},
            "engine": "torch",
            "device": "cpu",
            "data": data | ({"validation": validation} if validation else {}),
            "schedule": [
                {"wake": {"name": "train", "epochs": 2, "batch_size": 32}},
                {"test": {"name": "after"}},
            ],
            "output": str(tmp_path / "{name}.h5"),
        }

    out = {}
    for validation in (None, 0.2):
        content = protocol(validation)
        path = write_protocol(content, content["name"] + ".yaml")
        result = run(load_protocol(path), overwrite=True, progress=False)
        with open_run(result.path) as r:
            out[validation] = r.arrays("data"), r.evaluations().descriptions["accuracy"]
    (test_data, test_text), (val_data, val_text) = out[None], out[0.2]
    assert test_data["evaluated_on"] == b"test" and test_text.startswith("test accuracy")
    assert val_data["evaluated_on"] == b"validation"
    assert val_text.startswith("validation accuracy")
    # 20 % of each class's training images are held out of the training set
    n_train = test_data["train_samples"].sum()
    assert val_data["train_samples"].sum() + val_data["test_samples"].sum() == n_train
    assert abs(val_data["test_samples"].sum() - 0.2 * n_train) <= 5
    assert test_data["train_samples"].sum() + test_data["test_samples"].sum() == 1797
