"""Damaged, incomplete or hostile data files: a clear error naming the file, never a raw
zlib/pickle traceback, never code run from a data file, never training on part of the data
without a word (issue 14)."""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from tpref.tasks import DataError, make_task
from tpref.tasks.images import CifarWarning, load_cifar10, read_idx

from test_loaders import cifar_batch, make_mnist


def test_corrupt_deflate_data_inside_an_idx_gz_names_the_file(tmp_path):
    arr = (np.arange(40 * 28 * 28) % 7).astype(np.uint8)       # compressible: Huffman blocks
    raw = bytearray(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 40, 28, 28)
                                  + arr.tobytes(), mtime=0))
    raw[12] ^= 0xFF                                            # inside the deflate stream
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=f"cannot read IDX file {path}: .*invalid"):
        read_idx(path)


def test_no_data_directory_message_reads_plainly():
    with pytest.raises(DataError) as err:
        make_task("mnist")
    msg = str(err.value)
    assert "searched nowhere" not in msg
    assert "no data directory was given; pass one with --data-dir DIR" in msg


def test_missing_files_message_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match=f"looked in {tmp_path} and its subdirectories"):
        make_task("mnist", data_dir=tmp_path)


# ----------------------------------------------------------------------------------------------
# CIFAR-10: restricted unpickler, incomplete sets


def write_cifar(directory, blobs):
    d = os.path.join(directory, "cifar-10-batches-py")
    os.makedirs(d, exist_ok=True)
    for name, blob in blobs.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob if isinstance(blob, bytes) else pickle.dumps(blob, protocol=2))


def labelled(rng, n, i, of, kind="training"):
    batch = cifar_batch(rng, n)
    batch[b"batch_label"] = f"{kind} batch {i} of {of}".encode()
    return batch


def hostile_pickle(marker):
    """A pickle that, loaded with plain pickle, creates ``marker`` through os.system."""
    return (b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(f"touch {marker}"))
            + f"touch {marker}".encode() + b"\x85q\x01Rq\x02.")


def test_hostile_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    blob = hostile_pickle(marker)
    # the file really is hostile: plain pickle would run it
    pickle.loads(blob)
    assert marker.exists()
    marker.unlink()
    rng = np.random.default_rng(0)
    write_cifar(tmp_path, {"data_batch_1": blob, "test_batch": cifar_batch(rng, 3)})
    with pytest.raises(DataError, match=r"data_batch_1 is corrupt .*refusing to load "
                                        r"(os|posix)\.system"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    batch = cifar_batch(rng, 3)
    batch[b"data"] = np.array([[1] * 3072] * 3, dtype=object)
    write_cifar(tmp_path, {"data_batch_1": batch, "test_batch": cifar_batch(rng, 3)})
    with pytest.raises(DataError, match="refusing dtype object"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_official_contents_load_at_every_protocol(tmp_path, protocol):
    rng = np.random.default_rng(0)
    batches = {"data_batch_1": labelled(rng, 4, 1, 1), "test_batch": labelled(rng, 2, 1, 1, "testing")}
    write_cifar(tmp_path, {k: pickle.dumps(v, protocol=protocol) for k, v in batches.items()})
    (tr_x, tr_y), (te_x, _) = load_cifar10(tmp_path)
    assert np.array_equal(tr_x.reshape(4, -1), batches["data_batch_1"][b"data"])
    assert list(tr_y) == batches["data_batch_1"][b"labels"] and te_x.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("archive", [False, True])
def test_a_missing_training_batch_is_refused_by_name(tmp_path, archive):
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": labelled(rng, 3, i, 5) for i in (1, 3, 4, 5)}
    batches["test_batch"] = labelled(rng, 2, 1, 1, "testing")
    if archive:
        path = tmp_path / "cifar-10-python.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name, batch in batches.items():
                blob = pickle.dumps(batch, protocol=2)
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        write_cifar(tmp_path, batches)
    with pytest.raises(DataError, match=r"incomplete: data_batch_2 missing \(its batches say "
                                        r"there are 5\)"):
        load_cifar10(tmp_path)


def test_a_missing_last_batch_is_refused_by_the_labels(tmp_path):
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": labelled(rng, 3, i, 5) for i in (1, 2, 3, 4)}
    batches["test_batch"] = labelled(rng, 2, 1, 1, "testing")
    write_cifar(tmp_path, batches)
    with pytest.raises(DataError, match="data_batch_5 missing"):
        load_cifar10(tmp_path)


def test_a_gap_without_labels_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    write_cifar(tmp_path, {"data_batch_1": cifar_batch(rng, 3), "data_batch_3": cifar_batch(rng, 3),
                           "test_batch": cifar_batch(rng, 2)})
    with pytest.raises(DataError, match=r"data_batch_2 missing \(data_batch_3 is present\)"):
        load_cifar10(tmp_path)


def test_a_labelled_subset_loads_quietly_and_an_unlabelled_one_warns(tmp_path, recwarn):
    rng = np.random.default_rng(0)
    write_cifar(tmp_path / "subset", {"data_batch_1": labelled(rng, 3, 1, 1),
                                      "test_batch": labelled(rng, 2, 1, 1, "testing")})
    load_cifar10(tmp_path / "subset")
    assert not [w for w in recwarn if issubclass(w.category, CifarWarning)]
    write_cifar(tmp_path / "bare", {"data_batch_1": cifar_batch(rng, 3),
                                    "test_batch": cifar_batch(rng, 2)})
    with pytest.warns(CifarWarning, match="1 training batch.*training on 1/5 of the data"):
        load_cifar10(tmp_path / "bare")


def test_truncated_idx_file_names_the_file(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=str(path)):
        make_task("mnist", data_dir=tmp_path)
