"""Loaders of the official files, on tiny files written here in the official formats."""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from tpref.tasks import DataError, make_task
from tpref.tasks.images import image_sequences, load_cifar10, load_idx_dataset, read_idx


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def make_mnist(directory, n_train=40, n_test=12, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(os.path.join(directory, f"{split}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"), labels)
        data[split] = (images, labels)
    return data


def cifar_batch(rng, n):
    return {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=n)], b"batch_label": b"x"}


def make_cifar(directory, *, archive):
    rng = np.random.default_rng(1)
    batches = {"data_batch_1": cifar_batch(rng, 10), "data_batch_2": cifar_batch(rng, 6),
               "test_batch": cifar_batch(rng, 5)}
    for i, name in enumerate(batches):   # as the official files say: "training batch 1 of 5"
        batches[name][b"batch_label"] = (f"training batch {i + 1} of 2" if i < 2
                                         else "testing batch 1 of 1").encode()
    blobs = {k: pickle.dumps(v) for k, v in batches.items()}
    blobs["batches.meta"] = pickle.dumps({b"label_names": [b"a"] * 10})
    if archive:
        path = os.path.join(directory, "cifar-10-python.tar.gz")
        with tarfile.open(path, "w:gz") as tar:
            for name, blob in blobs.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        os.makedirs(os.path.join(directory, "cifar-10-batches-py"))
        for name, blob in blobs.items():
            with open(os.path.join(directory, "cifar-10-batches-py", name), "wb") as f:
                f.write(blob)
    return batches


def test_mnist_roundtrip_and_sequences(tmp_path):
    data = make_mnist(tmp_path / "mnist-tiny")
    (tr_x, tr_y), (te_x, te_y) = load_idx_dataset("mnist", tmp_path)   # found one level deep
    assert np.array_equal(tr_x, data["train"][0]) and np.array_equal(te_y, data["t10k"][1])
    task = make_task("mnist", data_dir=tmp_path, pixels_per_step=4)
    x, y = task.train_batch(0, 0, 8)
    assert x.shape == (196, 8, 4) and task.length == 196
    # row-major scan, k pixels per step, pixels in [0, 1] (MNIST is not normalized)
    img = tr_x[np.flatnonzero(np.all(tr_x.reshape(40, -1) / 255.0 ==
                                     x.transpose(1, 0, 2).reshape(8, -1)[0], axis=1))[0]]
    assert np.array_equal(x[:, 0, :].ravel(), img.ravel() / 255.0)


def test_epochs_visit_every_training_image_once(tmp_path):
    make_mnist(tmp_path, n_train=40)
    task = make_task("mnist", data_dir=tmp_path, pixels_per_step=784)
    seen = np.concatenate([task.train_batch(3, i, 8)[1] for i in range(5)])
    assert np.array_equal(np.sort(seen), np.sort(task.train_labels))
    # iteration 4 straddles no epoch; iteration 5 starts epoch 1, a new permutation
    a = np.concatenate([task.train_batch(3, i, 8)[1] for i in range(5, 10)])
    assert np.array_equal(np.sort(a), np.sort(task.train_labels))


def test_pmnist_fixed_permutation(tmp_path):
    make_mnist(tmp_path)
    plain = make_task("mnist", data_dir=tmp_path)
    perm = make_task("pmnist", data_dir=tmp_path, permutation_seed=7)
    again = make_task("pmnist", data_dir=tmp_path, permutation_seed=7)
    xp, yp = plain.train_batch(0, 0, 4)
    xq, yq = perm.train_batch(0, 0, 4)
    assert np.array_equal(yp, yq)
    assert np.array_equal(xq[:, :, 0], xp[perm.permutation, :, 0])
    assert np.array_equal(perm.permutation, again.permutation)
    assert not np.array_equal(perm.permutation, np.arange(784))


@pytest.mark.parametrize("archive", [True, False])
def test_cifar_archive_and_directory(tmp_path, archive):
    batches = make_cifar(tmp_path, archive=archive)
    (tr_x, tr_y), (te_x, te_y) = load_cifar10(tmp_path)
    assert tr_x.shape == (16, 3, 32, 32) and te_x.shape == (5, 3, 32, 32)
    assert np.array_equal(tr_x[:10].reshape(10, -1), batches["data_batch_1"][b"data"])
    assert list(te_y) == batches["test_batch"][b"labels"]
    task = make_task("cifar10", data_dir=tmp_path)
    x, _ = next(task.eval_batches(0, 0))
    assert x.shape == (3072, 5, 1)
    # channel by channel: the first 1024 steps are the red plane, normalized
    red = te_x[0, 0].ravel() / 255.0
    assert np.allclose(x[:1024, 0, 0], (red - 0.4914) / 0.247)
    green = te_x[0, 1].ravel() / 255.0
    assert np.allclose(x[1024:2048, 0, 0], (green - 0.4822) / 0.243)


def test_fashion_mnist_normalized(tmp_path):
    data = make_mnist(tmp_path / "fashion")
    make_mnist(tmp_path / "mnist", seed=9)        # same file names: the right one is chosen
    task = make_task("fashion-mnist", data_dir=tmp_path, pixels_per_step=784)
    x, _ = next(task.eval_batches(0, 1))
    assert np.allclose(x[0, 0], (data["t10k"][0][0].ravel() / 255.0 - 0.2860) / 0.3202)
    (tr, _), _ = load_idx_dataset("mnist", tmp_path)
    assert not np.array_equal(tr, data["train"][0])


def test_missing_data_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match="yann.lecun.com"):
        make_task("mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match="cs.toronto.edu"):
        make_task("cifar10", data_dir=tmp_path)
    with pytest.raises(DataError, match="--data-dir"):
        make_task("cifar10")


def test_corrupt_idx_files(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as f:                 # truncated payload
        f.write(raw[:-100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        make_task("mnist", data_dir=tmp_path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read IDX"):
        read_idx(path)
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x0d\x03" + raw[4:])       # float magic
    with pytest.raises(DataError, match="magic"):
        read_idx(path)


def test_corrupt_cifar(tmp_path):
    make_cifar(tmp_path, archive=False)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="corrupt"):
        load_cifar10(tmp_path)
    bad = tmp_path / "other"
    bad.mkdir()
    (bad / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    with pytest.raises(DataError, match="tar.gz"):
        load_cifar10(bad / "cifar-10-python.tar.gz")


def test_pixels_per_step_must_divide_the_image(tmp_path):
    make_mnist(tmp_path)
    with pytest.raises(ValueError, match="divisor of 784"):
        make_task("mnist", data_dir=tmp_path, pixels_per_step=5)
    with pytest.raises(ValueError, match="does not divide"):
        image_sequences(np.zeros((2, 28, 28), np.uint8), 3)
