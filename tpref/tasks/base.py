"""The task interface and its implementations: synthetic generators and image data sets."""

import numpy as np

from .images import NORMALIZATION, image_sequences, load_cifar10, load_idx_dataset
from .synthetic import (MARKER_RULES, TEMPORAL_ORDER_CLASSES, TEMPORAL_ORDER_SYMBOLS,
                        adding_accuracy, adding_batch, temporal_order_batch)

TASK_NAMES = ("temporal-order", "adding", "mnist", "pmnist", "fashion-mnist", "cifar10")
ADDING_CRITERIA = ("squared", "abs")

#: Stream labels mixed into the seed so that training, evaluation, and the permutation of
#: permuted MNIST draw from independent generators.
_TRAIN_STREAM, _EVAL_STREAM, _PERMUTATION_STREAM = 0, 1, 2
_EVAL_CHUNK = 500


def stream_rng(seed, stream, index):
    """A Generator that is a pure function of (seed, stream, index)."""
    return np.random.default_rng([int(seed), int(stream), int(index)])


class Task:
    """A source of (x, y) batches and the metrics of its predictions.

    Attributes
    ----------
    name : str
    length : int            sequence length T
    d, k : int              input size and output size
    loss : {"cross_entropy", "mse"}
    """

    name = None
    loss = "cross_entropy"

    def train_batch(self, seed, iteration, batch_size):
        """The training batch of ``iteration``: (x (T, B, d), y), a function of its arguments."""
        raise NotImplementedError

    def eval_batches(self, seed, size):
        """Held-out evaluation data in chunks of at most 500 samples: iterator of (x, y)."""
        raise NotImplementedError

    def metrics(self, output, y):
        """{"accuracy": fraction correct, ...} of outputs (B, k) against targets."""
        return {"accuracy": float(np.mean(np.argmax(output, axis=1) == y))}

    def describe(self):
        """A dict of everything that defines the task (saved with every run)."""
        return {"task": self.name, "length": self.length}


class TemporalOrderTask(Task):
    """Temporal order, 6 one-hot symbols, 4 classes (Sec. 4); fresh random batches."""

    name = "temporal-order"

    def __init__(self, length=60, markers="paper"):
        if length is None:
            length = 60
        if int(length) != length or length < 10:
            raise ValueError(f"temporal-order needs length >= 10 (markers at T/10..), got {length!r}")
        if markers not in MARKER_RULES:
            raise ValueError(f"markers must be one of {MARKER_RULES}, got {markers!r}")
        self.length, self.markers = int(length), markers
        self.d, self.k = TEMPORAL_ORDER_SYMBOLS, TEMPORAL_ORDER_CLASSES

    def train_batch(self, seed, iteration, batch_size):
        return temporal_order_batch(stream_rng(seed, _TRAIN_STREAM, iteration), self.length,
                                    batch_size, self.markers)

    def eval_batches(self, seed, size):
        rng = stream_rng(seed, _EVAL_STREAM, 0)
        for start in range(0, size, _EVAL_CHUNK):
            yield temporal_order_batch(rng, self.length, min(_EVAL_CHUNK, size - start), self.markers)

    def describe(self):
        return {"task": self.name, "length": self.length, "markers": self.markers}


class AddingTask(Task):
    """Adding problem, 2 input channels, one linear output, MSE (Sec. 4)."""

    name = "adding"
    loss = "mse"

    def __init__(self, length=30, criterion="squared"):
        if length is None:
            length = 30
        if int(length) != length or length < 10:
            raise ValueError(f"adding needs length >= 10 (markers in [0, T/10)), got {length!r}")
        if criterion not in ADDING_CRITERIA:
            raise ValueError(f"adding criterion must be one of {ADDING_CRITERIA}, got {criterion!r}")
        self.length, self.criterion = int(length), criterion
        self.d, self.k = 2, 1

    def train_batch(self, seed, iteration, batch_size):
        return adding_batch(stream_rng(seed, _TRAIN_STREAM, iteration), self.length, batch_size)

    def eval_batches(self, seed, size):
        rng = stream_rng(seed, _EVAL_STREAM, 0)
        for start in range(0, size, _EVAL_CHUNK):
            yield adding_batch(rng, self.length, min(_EVAL_CHUNK, size - start))

    def metrics(self, output, y):
        """accuracy (the chosen criterion) plus both criteria under their own names."""
        m = adding_accuracy(output, y)
        m["accuracy"] = m["accuracy_sq" if self.criterion == "squared" else "accuracy_abs"]
        return m

    def describe(self):
        return {"task": self.name, "length": self.length, "criterion": self.criterion}


class ImageTask(Task):
    """Pixel-by-pixel classification of an image data set, k pixels per step.

    Training batches run through the training set in epochs, each epoch a permutation drawn
    from (seed, epoch); the batch of iteration i is samples i*B .. (i+1)*B - 1 of that stream.
    """

    def __init__(self, name, data_dir=None, pixels_per_step=1, permutation_seed=0):
        if name not in ("mnist", "pmnist", "fashion-mnist", "cifar10"):
            raise ValueError(f"unknown image task {name!r}")
        size = 3072 if name == "cifar10" else 784
        if (isinstance(pixels_per_step, bool) or int(pixels_per_step) != pixels_per_step
                or pixels_per_step < 1 or size % pixels_per_step):
            raise ValueError(f"pixels_per_step must be a positive divisor of {size} for {name} "
                             f"(sequence length {size} / k), got {pixels_per_step!r}")
        self.name, self.data_dir = name, data_dir
        self.pixels_per_step = int(pixels_per_step)
        self.length, self.d, self.k = size // self.pixels_per_step, self.pixels_per_step, 10
        self.permutation_seed = permutation_seed
        if name == "cifar10":
            (self.train_images, self.train_labels), (self.test_images, self.test_labels) = \
                load_cifar10(data_dir)
        else:
            dataset = "fashion-mnist" if name == "fashion-mnist" else "mnist"
            (self.train_images, self.train_labels), (self.test_images, self.test_labels) = \
                load_idx_dataset(dataset, data_dir)
        self.normalization = NORMALIZATION["mnist" if name == "pmnist" else name]
        self.permutation = None
        if name == "pmnist":     # one fixed permutation of the 784 pixels
            self.permutation = stream_rng(permutation_seed, _PERMUTATION_STREAM, 0).permutation(size)
        self._epoch = (None, None)

    def _sequences(self, images):
        return image_sequences(images, self.pixels_per_step, self.normalization, self.permutation)

    def _epoch_order(self, seed, epoch):
        if self._epoch[0] != (seed, epoch):
            order = stream_rng(seed, _TRAIN_STREAM, epoch).permutation(len(self.train_labels))
            self._epoch = ((seed, epoch), order)
        return self._epoch[1]

    def train_batch(self, seed, iteration, batch_size):
        n = len(self.train_labels)
        pos = np.arange(iteration * batch_size, (iteration + 1) * batch_size)
        idx = np.empty(batch_size, dtype=np.int64)
        for epoch in np.unique(pos // n):
            sel = pos // n == epoch
            idx[sel] = self._epoch_order(seed, int(epoch))[pos[sel] % n]
        return self._sequences(self.train_images[idx]), self.train_labels[idx]

    def eval_batches(self, seed, size):
        """The first ``size`` test images (all if size is 0 or larger than the test set)."""
        n = len(self.test_labels) if not size else min(size, len(self.test_labels))
        for start in range(0, n, _EVAL_CHUNK):
            stop = min(n, start + _EVAL_CHUNK)
            yield self._sequences(self.test_images[start:stop]), self.test_labels[start:stop]

    def describe(self):
        out = {"task": self.name, "length": self.length, "pixels_per_step": self.pixels_per_step,
               "data_dir": None if self.data_dir is None else str(self.data_dir),
               "train_size": int(len(self.train_labels)), "test_size": int(len(self.test_labels))}
        if self.name == "pmnist":
            out["permutation_seed"] = self.permutation_seed
        return out


def make_task(name, *, length=None, data_dir=None, pixels_per_step=1, markers="paper",
              criterion="squared", permutation_seed=0):
    """The task called ``name``, checked and (for images) loaded.

    Parameters
    ----------
    name : one of TASK_NAMES
    length : int, synthetic tasks only (default 60 for temporal order, 30 for adding)
    data_dir : path, image tasks only (Fashion-MNIST also looks in /usr/share/datasets)
    pixels_per_step : int dividing the image size, image tasks only (length = size / k)
    markers : {"paper", "code"}, temporal order only
    criterion : {"squared", "abs"}, adding only: which accuracy is reported as "accuracy"
    permutation_seed : int, permuted MNIST only
    """
    if name == "temporal-order":
        return TemporalOrderTask(length, markers)
    if name == "adding":
        return AddingTask(length, criterion)
    if name in TASK_NAMES:
        if length is not None:
            size = 3072 if name == "cifar10" else 784
            if size % length:
                raise ValueError(f"length {length} does not divide the {size} pixels of a "
                                 f"{name} image")
            if pixels_per_step not in (1, size // length):
                raise ValueError(f"length {length} and pixels_per_step {pixels_per_step} "
                                 f"disagree for {name} ({size} pixels)")
            pixels_per_step = size // length
        return ImageTask(name, data_dir, pixels_per_step, permutation_seed)
    raise ValueError(f"unknown task {name!r}; choose one of {TASK_NAMES}")
