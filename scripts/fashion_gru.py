"""FashionMNIST with a GRU, TP vs BP (Fig. 4, right, of the paper), self-contained.

Pixels scanned row-major, one per step (T = 784, d = 1), normalized with mean 0.2860 and std
0.3202; GRU with p = 100 hidden units and a softmax output over 10 classes; batch 16; SGD
without momentum; TP with (gamma_theta, gamma_h, r) = (0.1, 1e-2, 1), BP with lr = 1e-2
(ANCHORS.md). Both methods start from the same seeded initialization and see the same
mini-batches. They are trained alternately in blocks of ``--eval-every`` iterations so that,
if the run is stopped early (``--max-minutes``), both have reached the same iteration count.
After each block the test accuracy and loss on a fixed held-out subset of the test set are
logged to a CSV file and the figure is redrawn.

Data: the four official IDX gzip files (Debian: ``apt-get install dataset-fashion-mnist`` puts
them in /usr/share/datasets/fashion-mnist; elsewhere download them from
https://github.com/zalandoresearch/fashion-mnist).

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python scripts/fashion_gru.py \
        --data-dir /usr/share/datasets/fashion-mnist --iterations 8000 \
        --csv docs/results/fashion_gru.csv --figure docs/figures/fashion_gru.png
"""

import argparse
import csv
import gzip
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import tpref  # noqa: E402
from tpref.losses import loss_and_grad, output_layer  # noqa: E402
from tpref.presets import PRESETS  # noqa: E402

#: Normalization of FashionMNIST pixels (authors' code).
MEAN, STD = 0.2860, 0.3202
#: Step sizes, batch size and iteration count of the paper's FashionMNIST GRU run.
PRESET = PRESETS["fashion-mnist"]


def read_idx(path):
    """An IDX file (gzip) as a uint8 ndarray: images (n, rows, cols) or labels (n,)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(data_dir, split):
    """(images (n, 784) float64 normalized, labels (n,) int64) of 'train' or 't10k'."""
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    x = (images.reshape(len(images), -1).astype(np.float64) / 255.0 - MEAN) / STD
    return x, labels.astype(np.int64)


def as_sequences(images):
    """(n, 784) row-major pixels -> (784, n, 1) time-major sequences, one pixel per step."""
    return np.ascontiguousarray(images.T[:, :, None])


def evaluate(params, x_test, y_test, chunk=250):
    """(accuracy, mean cross-entropy) of the GRU on a held-out set, with the Numba forward."""
    from tpref.kernels.numba_gru import gru_forward_numba
    correct, total_loss = 0, 0.0
    for start in range(0, len(y_test), chunk):
        xs = as_sequences(x_test[start:start + chunk])
        ys = y_test[start:start + chunk]
        hidden, _ = gru_forward_numba(params, xs)
        out = output_layer(params, hidden[-1])
        value, _ = loss_and_grad("cross_entropy", out, ys)
        total_loss += value * len(ys)
        correct += int((out.argmax(axis=1) == ys).sum())
    return correct / len(y_test), total_loss / len(y_test)


def _label(row):
    return row.get("label") or row["method"].upper()


def plot(rows, path):
    """Test accuracy and training loss vs iterations, one curve per method (or label)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    labels = list(dict.fromkeys(_label(r) for r in rows))
    for label in labels:
        rs = [r for r in rows if _label(r) == label]
        it = [r["iteration"] for r in rs]
        style = "--" if "through" in label else "-"
        color = "C1" if label.startswith("BP") else "C0"
        axes[0].plot(it, [100 * r["test_acc"] for r in rs], style, color=color, label=label)
        axes[1].plot(it[1:], [r["train_loss"] for r in rs][1:], style, color=color, label=label)
    axes[0].set(xlabel="iterations", ylabel="test accuracy (%)",
                title="FashionMNIST, GRU (1000 test images)")
    axes[1].set(xlabel="iterations", ylabel="training loss (mean over 200 it.)")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(specs, figure=None):
    """Markdown table of one or more runs' CSVs (``path`` or ``path:tag``, the tag labelling
    that file's TP rows, e.g. ``...:through_time``): final and best test accuracy, losses,
    training time; draws all runs into ``figure`` if given."""
    rows = []
    for spec in specs:
        path, _, tag = spec.partition(":")
        with open(path) as f:
            for r in csv.DictReader(f):
                r = dict(r, iteration=int(r["iteration"]), test_acc=float(r["test_acc"]),
                         test_loss=float(r["test_loss"]), train_loss=float(r["train_loss"]),
                         train_seconds=float(r["train_seconds"]))
                r["label"] = r["method"].upper() + (f" ({tag})" if tag and r["method"] == "tp" else "")
                rows.append(r)
    print("| method | iterations | final test acc. | best test acc. (at it.) | final test loss | "
          "last-block train loss | training wall time | s/iteration |")
    print("|---|---|---|---|---|---|---|---|")
    for label in dict.fromkeys(r["label"] for r in rows):
        rs = [r for r in rows if r["label"] == label]
        last = rs[-1]
        best = max(rs, key=lambda r: r["test_acc"])
        per = last["train_seconds"] / max(last["iteration"], 1)
        print(f"| {label} | {last['iteration']} | {100 * last['test_acc']:.1f}% | "
              f"{100 * best['test_acc']:.1f}% ({best['iteration']}) | {last['test_loss']:.3f} | "
              f"{last['train_loss']:.3f} | {last['train_seconds'] / 60:.1f} min | {per:.3f} |")
    if figure:
        plot(rows, figure)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--summarize":                          # --summarize CSV[:tag]... [--figure F]
        figure = None
        if "--figure" in argv:
            i = argv.index("--figure")
            figure, argv = argv[i + 1], argv[:i] + argv[i + 2:]
        summarize(argv[1:], figure)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--iterations", type=int, default=PRESET.iterations)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--test-subset", type=int, default=1000,
                    help="size of the fixed held-out subset of the 10,000 test images")
    ap.add_argument("--batch", type=int, default=PRESET.batch_size)
    ap.add_argument("--hidden", type=int, default=PRESET.hidden)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", default=["tp", "bp"], choices=["tp", "bp"])
    ap.add_argument("--gru-inverse", default="per_gate", choices=["per_gate", "exact"])
    ap.add_argument("--update", default="local", choices=["local", "through_time"])
    ap.add_argument("--backend", default="numba", choices=["numpy", "numba"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="computation dtype (float32, as the authors' PyTorch runs, is ~2x faster)")
    ap.add_argument("--init", default="orthogonal", choices=["orthogonal", "torch"],
                    help="orthogonal: tpref.init_gru (the authors' intent); torch: PyTorch's "
                         "default U(-1/sqrt(p), 1/sqrt(p)) for every GRU and Linear parameter, "
                         "which is what the authors' GRU actually ran with (ANCHORS.md), "
                         "drawn with numpy from --seed")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop after the block during which this wall time is passed")
    ap.add_argument("--csv", default="docs/results/fashion_gru.csv")
    ap.add_argument("--figure", default="docs/figures/fashion_gru.png")
    args = ap.parse_args(argv)

    dtype = np.dtype(args.dtype)
    x_train, y_train = load_split(args.data_dir, "train")
    x_test, y_test = load_split(args.data_dir, "t10k")
    x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
    held_out = np.random.default_rng(args.seed + 1).permutation(len(y_test))[:args.test_subset]
    x_test, y_test = x_test[held_out], y_test[held_out]

    init = tpref.init_gru(1, args.hidden, 10, seed=args.seed, dtype=dtype)
    if args.init == "torch":                                      # PyTorch's default init
        rng = np.random.default_rng(args.seed)
        bound = 1.0 / np.sqrt(args.hidden)
        init = {name: rng.uniform(-bound, bound, size=v.shape).astype(dtype)
                for name, v in init.items()}
    steps = {method: PRESET.steps_for(method) for method in args.methods}
    state = {}
    for method in args.methods:
        params = {name: value.copy() for name, value in init.items()}
        state[method] = dict(params=params, opt=tpref.SGD(params, lr=steps[method].lr),
                             batches=np.random.default_rng(args.seed + 2), order=None, pos=0,
                             iteration=0, seconds=0.0, diverged=False, initial_loss=None)

    os.makedirs(os.path.dirname(args.csv) or ".", exist_ok=True)
    fields = ["method", "iteration", "train_loss", "test_loss", "test_acc", "train_seconds"]
    rows = []
    with open(args.csv, "w", newline="") as f:
        csv.DictWriter(f, fieldnames=fields).writeheader()
    for method in args.methods:                                   # iteration-0 evaluation
        acc, tl = evaluate(state[method]["params"], x_test, y_test)
        rows.append(dict(method=method, iteration=0, train_loss=float("nan"), test_loss=tl,
                         test_acc=acc, train_seconds=0.0))
    start = time.time()
    while True:
        active = [m for m in args.methods
                  if state[m]["iteration"] < args.iterations and not state[m]["diverged"]]
        if not active:
            break
        for method in active:
            s = state[method]
            kw = dict(loss="cross_entropy", cell="gru", backend=args.backend)
            if method == "tp":
                kw.update(gamma_h=steps["tp"].gamma_h, reg=steps["tp"].reg,
                          update=args.update, gru_inverse=args.gru_inverse)
            losses = []
            t0 = time.perf_counter()
            for _ in range(args.eval_every):
                if s["order"] is None or s["pos"] + args.batch > len(y_train):
                    s["order"], s["pos"] = s["batches"].permutation(len(y_train)), 0
                idx = s["order"][s["pos"]:s["pos"] + args.batch]
                s["pos"] += args.batch
                res = tpref.oracle(method, s["params"], as_sequences(x_train[idx]), y_train[idx], **kw)
                if s["initial_loss"] is None:
                    s["initial_loss"] = res.loss
                if not (np.isfinite(res.loss)                     # divergence: NaN/inf loss
                        and all(np.isfinite(v).all() for v in res.direction.values())):
                    s["diverged"] = True                          # or direction (overflow)
                    break
                s["opt"].step(res.direction)
                losses.append(res.loss)
                s["iteration"] += 1
            s["seconds"] += time.perf_counter() - t0
            if losses and np.mean(losses) > 2 * s["initial_loss"]:  # authors' rule, block mean
                s["diverged"] = True
            acc, tl = evaluate(s["params"], x_test, y_test)
            row = dict(method=method, iteration=s["iteration"],
                       train_loss=float(np.mean(losses)) if losses else float("nan"),
                       test_loss=tl, test_acc=acc, train_seconds=round(s["seconds"], 2))
            rows.append(row)
            with open(args.csv, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(rows)
            print(f"{method} it={row['iteration']} train_loss={row['train_loss']:.4f} "
                  f"test_loss={tl:.4f} test_acc={acc:.4f} train_s={row['train_seconds']}"
                  + (" DIVERGED" if s["diverged"] else ""), flush=True)
        plot(rows, args.figure)
        if args.max_minutes is not None and time.time() - start > 60 * args.max_minutes:
            print(f"stopped after {args.max_minutes} minutes", flush=True)
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
