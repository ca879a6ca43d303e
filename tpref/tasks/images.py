"""Readers of the official image files and their pixel-by-pixel sequences (Sec. 4).

The readers take the files exactly as distributed:

- MNIST and Fashion-MNIST: the four IDX files, gzip-compressed
  (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
  ``t10k-labels-idx1-ubyte.gz``) from http://yann.lecun.com/exdb/mnist/ or
  https://github.com/zalandoresearch/fashion-mnist (Debian: ``apt-get install
  dataset-fashion-mnist`` puts them in /usr/share/datasets/fashion-mnist).
- CIFAR-10: the "python version" from https://www.cs.toronto.edu/~kriz/cifar.html, either the
  ``cifar-10-python.tar.gz`` archive or its extracted ``cifar-10-batches-py/`` directory.

A user names a directory; the files are looked up in it and in its immediate subdirectories.
"""

import glob
import gzip
import os
import pickle
import re
import tarfile
import warnings
import zlib

import numpy as np

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist"
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

#: Per-channel normalization of the authors' code: (mean, std). MNIST is left in [0, 1].
NORMALIZATION = {
    "mnist": None,
    "fashion-mnist": ((0.2860,), (0.3202,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
}


class DataError(OSError):
    """A data file is missing, truncated or not in the official format."""


# ----------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)


def read_idx(path):
    """An IDX file (gzip-compressed or not) as an ndarray of uint8.

    Format: magic 0x0000 0x08 ndim, then ndim big-endian uint32 sizes, then the bytes.
    """
    try:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:   # zlib.error: corrupt deflate data
        raise DataError(f"cannot read IDX file {path}: {err} (the file is damaged; "
                        f"download it again)") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number "
                        f"{raw[:4].hex() or 'empty'}); expected 0x00000801 or 0x00000803")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    n = int(np.prod(shape))
    if len(raw) - header != n:
        raise DataError(f"{path}: header announces shape {shape} ({n} bytes) but the file holds "
                        f"{len(raw) - header} bytes; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_dir(data_dir, names, prefer, avoid=()):
    """The directory among data_dir and its subdirectories holding all of ``names``."""
    candidates = [data_dir]
    if os.path.isdir(data_dir):
        subs = sorted(d for d in glob.glob(os.path.join(data_dir, "*")) if os.path.isdir(d))
        subs = [d for d in subs if not any(a in os.path.basename(d).lower() for a in avoid)]
        subs.sort(key=lambda d: not any(p in os.path.basename(d).lower() for p in prefer))
        candidates += subs
    for d in candidates:
        if all(os.path.isfile(os.path.join(d, n)) for n in names):
            return d
    return None


def find_idx_dir(dataset, data_dir=None):
    """Directory holding the four IDX files of ``dataset`` ("mnist" or "fashion-mnist").

    Raises DataError naming the files and where to get them when none is found.
    """
    names = MNIST_FILES["train"] + MNIST_FILES["test"]
    if dataset == "mnist":
        prefer, avoid, url = ("mnist",), ("fashion",), MNIST_URL
    else:
        prefer, avoid, url = ("fashion",), (), FASHION_MNIST_URL
    searched = []
    if data_dir is not None:
        searched.append(str(data_dir))
        found = _find_dir(str(data_dir), names, prefer, avoid)
        if found:
            return found
    if dataset == "fashion-mnist":
        searched.append(FASHION_MNIST_SYSTEM_DIR)
        if _find_dir(FASHION_MNIST_SYSTEM_DIR, names, prefer):
            return FASHION_MNIST_SYSTEM_DIR
    extra = (" (or `apt-get install dataset-fashion-mnist`, which installs them in "
             f"{FASHION_MNIST_SYSTEM_DIR})" if dataset == "fashion-mnist" else "")
    if searched:
        where = (f"looked in {' and '.join(searched)} and "
                 f"{'their' if len(searched) > 1 else 'its'} subdirectories")
    else:
        where = "no data directory was given; pass one with --data-dir DIR (data_dir=...)"
    raise DataError(f"{dataset} files not found: {where}. Need {', '.join(names)}, "
                    f"from {url}{extra}")


def load_idx_dataset(dataset, data_dir=None):
    """((train_images, train_labels), (test_images, test_labels)) of MNIST or Fashion-MNIST.

    Images are uint8 of shape (N, 28, 28), labels int64 of shape (N,).
    """
    d = find_idx_dir(dataset, data_dir)
    splits = []
    for split in ("train", "test"):
        img_name, lab_name = MNIST_FILES[split]
        images = read_idx(os.path.join(d, img_name))
        labels = read_idx(os.path.join(d, lab_name))
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(f"{d}: {img_name} has shape {images.shape} and {lab_name} "
                            f"{labels.shape}; expected (N, rows, cols) images and N labels")
        if labels.max(initial=0) > 9:
            raise DataError(f"{os.path.join(d, lab_name)}: labels must lie in 0..9")
        splits.append((images, labels.astype(np.int64)))
    return tuple(splits)


# ----------------------------------------------------------------------------------------------
# CIFAR-10 python version

CIFAR_DIRNAME = "cifar-10-batches-py"


class CifarWarning(UserWarning):
    """CIFAR-10 files that may be incomplete, read anyway (see :func:`load_cifar10`)."""


def _safe_dtype(spec, align=False, copy=False):
    """numpy.dtype for the unpickler: plain numeric dtypes only (no object arrays)."""
    dt = np.dtype(spec, align=align, copy=copy)
    if dt.kind not in "biuf" or dt.fields is not None:
        raise pickle.UnpicklingError(f"refusing dtype {dt} (only numeric arrays are expected)")
    return dt


_ARRAY = np.zeros(1, dtype=np.uint8)
#: What a CIFAR-10 batch pickle may name (protocol 2 as distributed, or as re-pickled by
#: Python 3): numpy's array reconstructors, a numeric dtype, and _codecs.encode (how Python 3
#: writes bytes at protocol 2). Nothing that can run other code.
_CIFAR_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): __import__("codecs").encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _CIFAR_GLOBALS[(_module, "_reconstruct")] = _ARRAY.__reduce__()[0]
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _CIFAR_GLOBALS[(_module, "_frombuffer")] = _ARRAY.__reduce_ex__(5)[0]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles what the official CIFAR-10 batches contain (dicts, lists, bytes, ints,
    numeric numpy arrays) and refuses every other global, so a hostile file runs no code."""

    def find_class(self, module, name):
        found = _CIFAR_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only dicts, lists, "
                f"bytes, ints and numpy arrays (a file that names {module}.{name} is not an "
                f"official batch and may run code)")
        return found


def _unpickle(f, name):
    """(data, labels, batch_label) of one CIFAR-10 batch, read by the restricted unpickler."""
    try:
        batch = _CifarUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        label = batch.get(b"batch_label", b"")
    except Exception as err:  # pickle raises many types on corrupt input
        raise DataError(f"CIFAR-10 batch {name} is corrupt or not in the official python "
                        f"format (a pickled dict with b'data' and b'labels'): {err}") from err
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataError(f"CIFAR-10 batch {name}: data has shape {data.shape} and labels "
                        f"{labels.shape}; expected (N, 3072) and (N,)")
    return data, labels, label if isinstance(label, bytes) else b""


def _check_training_batches(train, labels, source):
    """Refuse an incomplete set of training batches; warn where completeness is unknowable.

    Each official batch says how many there are: b'training batch 2 of 5' (a subset made
    for tests says b'training batch 1 of 1 (subset)'). Every batch that is announced must
    be present; so must every number below the highest batch present. Without such labels,
    fewer than the official five batches are read with a CifarWarning.
    """
    numbers = sorted(int(m.group(1)) for m in
                     (re.fullmatch(r"data_batch_(\d+)", os.path.basename(t)) for t in train) if m)
    announced = [int(m.group(1)) for m in (re.search(rb"batch \d+ of (\d+)", lab or b"")
                                           for lab in labels) if m]
    expected = max(announced + numbers, default=0)
    missing = [f"data_batch_{i}" for i in range(1, expected + 1) if i not in numbers]
    if missing:
        said = (f"its batches say there are {max(announced)}" if announced
                else f"data_batch_{max(numbers)} is present")
        raise DataError(f"CIFAR-10 in {source} is incomplete: {', '.join(missing)} missing "
                        f"({said}); training on part of the data would be a silent wrong "
                        f"answer. Get cifar-10-python.tar.gz again from {CIFAR10_URL}")
    if not announced and len(numbers) < 5:
        warnings.warn(f"CIFAR-10 in {source} has {len(numbers)} training batch(es), the "
                      f"official set 5, and its batches do not say how many there should be: "
                      f"training on {len(numbers)}/5 of the data", CifarWarning, stacklevel=3)


def _cifar_batches(members):
    """Sorted names of the training batches and the test batch among ``members``."""
    train = sorted(m for m in members if os.path.basename(m).startswith("data_batch_"))
    test = [m for m in members if os.path.basename(m) == "test_batch"]
    return train, test


def load_cifar10(path=None):
    """((train_images, train_labels), (test_images, test_labels)) of CIFAR-10.

    ``path`` is the ``cifar-10-batches-py`` directory, a ``.tar.gz`` archive of it, or a
    directory holding either (searched one level deep). Images are uint8 of shape
    (N, 3, 32, 32) (channel-major, as stored), labels int64 (N,).

    The batches are pickles, read by a restricted unpickler that accepts only what the
    official files hold (a file naming any other Python object raises DataError, and runs
    nothing). A set with training batches missing raises DataError: every official batch
    says how many there are (b'training batch 2 of 5'), so a subset is told from a damaged
    set by those labels (a subset labels its batches "1 of 1").
    """
    if path is None:
        raise DataError(f"CIFAR-10 needs a data directory (--data-dir) holding "
                        f"{CIFAR_DIRNAME}/ or cifar-10-python.tar.gz, from {CIFAR10_URL}")
    path = str(path)
    source = None
    if os.path.isfile(path):
        source = path
    elif os.path.isdir(path):
        for cand in [path] + sorted(glob.glob(os.path.join(path, "*"))):
            if os.path.isdir(cand) and os.path.isfile(os.path.join(cand, "test_batch")):
                source = cand
                break
            if os.path.isdir(os.path.join(cand, CIFAR_DIRNAME)):
                source = os.path.join(cand, CIFAR_DIRNAME)
                break
        if source is None:
            archives = sorted(glob.glob(os.path.join(path, "*.tar.gz"))
                              + glob.glob(os.path.join(path, "*", "*.tar.gz")))
            archives = [a for a in archives if "cifar" in os.path.basename(a).lower()]
            source = archives[0] if archives else None
    if source is None:
        raise DataError(f"CIFAR-10 not found in {path}: need {CIFAR_DIRNAME}/ (with data_batch_1.."
                        f" and test_batch) or cifar-10-python.tar.gz, from {CIFAR10_URL}")
    if os.path.isdir(source):
        train, test = _cifar_batches(glob.glob(os.path.join(source, "*")))
        if not train or not test:
            raise DataError(f"{source} lacks data_batch_* or test_batch files (from {CIFAR10_URL})")

        def read(name):
            with open(name, "rb") as f:
                return _unpickle(f, name)
    else:
        try:
            tar = tarfile.open(source, "r:gz")
            names = tar.getnames()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataError(f"{source} is not a readable .tar.gz archive of CIFAR-10 "
                            f"({err}); get cifar-10-python.tar.gz from {CIFAR10_URL}") from err
        train, test = _cifar_batches(names)
        if not train or not test:
            raise DataError(f"{source} holds no data_batch_* / test_batch members "
                            f"(from {CIFAR10_URL})")

        def read(name):
            try:
                f = tar.extractfile(name)
                return _unpickle(f, f"{source}:{name}")
            except (tarfile.TarError, OSError, EOFError) as err:
                raise DataError(f"{source}: cannot read member {name}: {err}") from err
    parts = [read(n) for n in train]
    _check_training_batches(train, [p[2] for p in parts], source)
    test_data, test_labels, _ = read(test[0])
    train_data = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    if not isinstance(source, str) or not os.path.isdir(source):
        tar.close()
    for labels, name in ((train_labels, "training"), (test_labels, "test")):
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DataError(f"CIFAR-10 {name} labels must lie in 0..9 ({source})")
    return ((train_data.reshape(-1, 3, 32, 32), train_labels),
            (test_data.reshape(-1, 3, 32, 32), test_labels))


# ----------------------------------------------------------------------------------------------
# images -> sequences


def image_sequences(images, pixels_per_step, normalization=None, permutation=None):
    """Pixel-by-pixel sequences of a stack of images, time-major.

    Pixels are scaled to [0, 1], normalized per channel ((v - mean) / std) if asked,
    flattened row-major channel by channel (all of channel 0, then channel 1, ...), permuted
    by ``permutation`` if given, and cut into steps of ``pixels_per_step`` values.

    Parameters
    ----------
    images : ndarray of uint8, shape (N, H, W) or (N, C, H, W)
    pixels_per_step : int dividing C * H * W
    normalization : (means, stds) per channel, or None
    permutation : ndarray of shape (C * H * W,) or None

    Returns
    -------
    x : ndarray of shape (C * H * W / pixels_per_step, N, pixels_per_step), float64
    """
    N = images.shape[0]
    imgs = images[:, None] if images.ndim == 3 else images           # (N, C, H, W)
    x = imgs.astype(np.float64) / 255.0                               # (N, C, H, W) in [0, 1]
    if normalization is not None:
        mean, std = (np.asarray(v, dtype=np.float64)[None, :, None, None] for v in normalization)
        x = (x - mean) / std
    x = x.reshape(N, -1)                                                # (N, C*H*W)
    if permutation is not None:
        x = x[:, permutation]
    n = x.shape[1]
    if n % pixels_per_step:
        raise ValueError(f"pixels_per_step={pixels_per_step} does not divide the {n} values "
                         f"of an image")
    return np.ascontiguousarray(x.reshape(N, n // pixels_per_step, pixels_per_step)
                                .transpose(1, 0, 2))                  # (T, N, k)
