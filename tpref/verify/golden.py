"""Golden files: tpref's answers on the hard cases, checkable without tpref's code.

``tpref golden --out DIR`` (:func:`write_golden`) writes, for every case of
``tpref.verify.cases("all")`` and for its method and "bp", one ``<case>__<method>.npz`` with

    x, y, params/<name>                            the inputs (float64)
    f64/<quantity>, f32/<quantity>                 tpref's outputs in float64 and float32
    f32p/<quantity>, f64p/<quantity>               on inputs moved by 2 eps (the noise runs)
    tol64/<quantity>, tol32/<quantity>             the tolerances a candidate of that dtype gets

where <quantity> is ``loss``, ``output``, ``hidden``, ``displacements``, ``targets`` (TP/DTP)
and ``direction/<name>``, and a ``manifest.json``: conventions, shapes, options, the tolerance
policy, the tpref version and the sha256 of every file. :func:`load_golden` refuses a file
whose checksum differs (tampered or truncated).

A candidate (``tpref verify --golden DIR --candidate FILE.npz``, :func:`verify_golden`) is an
.npz of your outputs, keyed ``<case>/<method>/<quantity>``:

    rnn-saturated/tp/loss                 ()            batch-mean loss
    rnn-saturated/tp/hidden               (T+1, B, p)   h_0..h_T, time-major
    rnn-saturated/tp/displacements        (T+1, B, p)   lam_t = v_t - h_t
    rnn-saturated/tp/targets              (T+1, B, p)   v_t
    rnn-saturated/tp/direction/W_hh       like W_hh     gradient-like direction

any subset, for any subset of the cases; its precision is its arrays' dtype (float32 or
float64). Cases it does not mention are reported as not checked.
"""

import hashlib
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

from . import tolerance as _tol
from .casebook import cases as _cases
from .candidate import QUANTITIES
from .compare import compare
from .reference import Reference, values_of

FORMAT = "tpref-golden"
FORMAT_VERSION = 3
MANIFEST = "manifest.json"

CONVENTIONS = {
    "layout": "time-major: x (T, B, d); hidden, targets, displacements (T+1, B, p) with index t "
              "= 0..T, hidden[0] = h_0 = 0; x[t-1] is the input of step t (the paper's x_t)",
    "params": "RNN: W_hh (p, p), W_xh (p, d), b_h (p,) [= torch bias_ih_l0 + bias_hh_l0], "
              "W_hy (k, p), b_y (k,); GRU: PyTorch's nn.GRU gates r, z, n (docs/gru.md)",
    "loss": "batch mean, PyTorch's reduction='mean' (MSE: mean over all B*k entries)",
    "targets": "v_T = h_T - gamma_h dl/dh_T (Eq. 1); displacements lam_t = v_t - h_t",
    "direction": "gradient-like: theta <- theta - lr * direction; TP/DTP transition parameters: "
                 "sum over t and over the batch of d_theta f_t(h_{t-1})^T (h_t - v_t) (Eq. 3)",
    "candidate_keys": "<case>/<method>/<quantity>, quantity in loss, hidden, displacements, "
                      "targets, direction/<param>",
}


class GoldenFileError(ValueError):
    """A golden directory or file is missing, malformed, tampered with or truncated."""


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _flatten(prefix, values):
    out = {}
    for q, v in values.items():
        if q == "direction":
            for n, a in v.items():
                out[f"{prefix}/direction/{n}"] = np.asarray(a)
        elif v is not None:
            out[f"{prefix}/{q}"] = np.asarray(v)
    return out


def _unflatten(prefix, data):
    values, direction = {}, {}
    for key in data:
        if not key.startswith(prefix + "/"):
            continue
        rest = key[len(prefix) + 1:]
        if rest.startswith("direction/"):
            direction[rest[len("direction/"):]] = data[key]
        elif rest == "loss":
            values["loss"] = float(data[key])
        else:
            values[rest] = data[key]
    values["direction"] = direction
    return values


def _tolerances(ref64, noise, dtype):
    """The tolerances compare() gives a candidate of ``dtype`` (stored for reference)."""
    T = ref64["hidden"].shape[0] - 1
    start = float(np.abs(ref64["displacements"][T]).max()) if "displacements" in ref64 else 0.0
    tols = {}
    for q in ("loss", "hidden", "displacements", "targets"):
        if q in ref64:
            tols[q] = _tol.tolerance(ref64[q], [run[q] for run in noise], dtype,
                                     stepped=q != "loss",
                                     start_scale=start if q != "hidden" else 0.0)
    tols["direction"] = _tol.direction_tolerances(ref64["direction"],
                                                  [run["direction"] for run in noise], dtype)
    return tols


def write_golden(out, cell="all", log=None):
    """Write the golden files of ``cases(cell)`` into directory ``out``; return the manifest.

    Each case is run with its own method and with "bp" by the NumPy reference, in float64 and
    float32. Existing golden files in ``out`` are overwritten.
    """
    import tpref

    os.makedirs(out, exist_ok=True)
    entries = []
    for case in _cases(cell):
        for method in dict.fromkeys((case.method, "bp")):
            name = f"{case.name}/{method}"
            r64 = values_of(case.oracle(method))
            ref = Reference(method, case.params, case.x, case.y, case.kwargs, r64)
            (f32, f32p), (f64p,) = ref.noise(np.float32), ref.noise(np.float64)
            data = {"x": case.x, "y": case.y,
                    **{f"params/{n}": a for n, a in case.params.items()},
                    **_flatten("f64", r64), **_flatten("f32", f32), **_flatten("f32p", f32p),
                    **_flatten("f64p", f64p)}
            for dt, tag in ((np.float32, "tol32"), (np.float64, "tol64")):
                data.update(_flatten(tag, _tolerances(r64, ref.noise(dt), dt)))
            fname = f"{case.name}__{method}.npz"
            path = os.path.join(out, fname)
            np.savez_compressed(path, **data)
            T, B, d = case.x.shape
            k, p = case.params["W_hy"].shape
            entries.append({
                "name": name, "case": case.name, "method": method, "file": fname,
                "sha256": _sha256(path), "cell": case.cell, "options": case.kwargs,
                "shapes": {"T": T, "B": B, "d": d, "p": p, "k": k},
                "quantities": [q for q in QUANTITIES if q in r64],
                "branches": list(case.branches), "description": case.description})
            if log:
                log(f"wrote {path}")
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "tpref_version": tpref.__version__,
        "conventions": CONVENTIONS,
        "tolerance_policy": {
            "rule": "tol = SAFETY * noise_t + RTOL[dtype] |ref| + ATOL_SCALE[dtype] max|ref_t| + "
                    "floor (tpref.verify.tolerance); stored per entry as tol32/* and tol64/*",
            "SAFETY": _tol.SAFETY, "WINDOW": _tol.WINDOW,
            "RTOL": {str(k): v for k, v in _tol.RTOL.items()},
            "ATOL_SCALE": {str(k): v for k, v in _tol.ATOL_SCALE.items()}},
        "cases": entries,
    }
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, default=_json_default)
    return manifest


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON-serializable: {type(obj).__name__}")


@dataclass(frozen=True)
class GoldenCase:
    """One case of a golden directory: inputs, float64 and float32 outputs, tolerances.

    Pass it to ``tpref.verify.compare`` as the reference.
    """

    name: str
    method: str
    options: dict
    params: dict
    x: np.ndarray
    y: np.ndarray
    f64: dict
    f32: dict
    f32p: dict
    f64p: dict

    def to_reference(self):
        noise = {np.dtype(np.float32): [self.f32, self.f32p],
                 np.dtype(np.float64): [self.f64p]}
        return Reference(self.method, self.params, self.x, self.y, self.options, self.f64,
                         noise=noise, name=self.name)


def load_golden(directory):
    """The cases of a golden directory, each file checked against the manifest's sha256.

    Raises
    ------
    GoldenFileError
        Missing or malformed manifest, a missing file, or a checksum mismatch (a file changed
        or truncated since ``tpref golden`` wrote it).
    """
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise GoldenFileError(f"{directory!r} is not a golden directory: no {MANIFEST} (write "
                              f"one with `tpref golden --out DIR`)")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise GoldenFileError(f"{path}: unreadable manifest ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise GoldenFileError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise GoldenFileError(f"{path}: format version {manifest.get('format_version')!r}, this "
                              f"tpref reads {FORMAT_VERSION}; regenerate with `tpref golden`")
    out = []
    for entry in manifest.get("cases", []):
        fpath = os.path.join(directory, entry["file"])
        if not os.path.isfile(fpath):
            raise GoldenFileError(f"golden file {fpath} is missing")
        digest = _sha256(fpath)
        if digest != entry["sha256"]:
            raise GoldenFileError(
                f"golden file {fpath} does not match its checksum (sha256 {digest[:16]}..., "
                f"manifest says {entry['sha256'][:16]}...): it was changed or truncated after "
                f"`tpref golden` wrote it; regenerate the directory")
        with np.load(fpath, allow_pickle=False) as data:
            data = {k: data[k] for k in data.files}
        params = {k[len("params/"):]: v for k, v in data.items() if k.startswith("params/")}
        out.append(GoldenCase(name=entry["name"], method=entry["method"],
                              options=dict(entry["options"]), params=params, x=data["x"],
                              y=data["y"], f64=_unflatten("f64", data),
                              f32=_unflatten("f32", data), f32p=_unflatten("f32p", data),
                              f64p=_unflatten("f64p", data)))
    if not out:
        raise GoldenFileError(f"{path} lists no cases")
    return out


def read_candidate(candidate):
    """{case name: candidate dict} from an .npz path or a flat dict keyed
    ``<case>/<method>/<quantity>`` (see the module docstring)."""
    if isinstance(candidate, (str, os.PathLike)):
        if not os.path.isfile(candidate):
            raise FileNotFoundError(f"candidate file {os.fspath(candidate)!r} does not exist")
        try:
            with np.load(candidate, allow_pickle=False) as data:
                flat = {k: data[k] for k in data.files}
        except (ValueError, OSError) as err:
            raise ValueError(f"candidate {os.fspath(candidate)!r} is not a readable .npz "
                             f"({err})") from err
    elif isinstance(candidate, dict):
        flat = candidate
    else:
        raise TypeError(f"candidate must be an .npz path or a dict, got "
                        f"{type(candidate).__name__}")
    out = {}
    for key, value in flat.items():
        parts = key.split("/")
        if len(parts) < 3 or (parts[2] == "direction") != (len(parts) == 4) or len(parts) > 4:
            raise ValueError(f"candidate key {key!r} is not <case>/<method>/<quantity> or "
                             f"<case>/<method>/direction/<param>")
        name, q = "/".join(parts[:2]), parts[2]
        entry = out.setdefault(name, {})
        if q == "direction":
            entry.setdefault("direction", {})[parts[3]] = value
        else:
            entry[q] = value
    if not out:
        raise ValueError("candidate holds no arrays")
    return out


@dataclass(frozen=True)
class GoldenReport:
    """Reports of every golden case a candidate covers; ``ok`` when all pass."""

    reports: dict
    not_checked: list

    @property
    def ok(self):
        return all(r.ok for r in self.reports.values())

    def to_dict(self):
        return {"ok": self.ok, "not_checked": list(self.not_checked),
                "cases": {n: r.to_dict() for n, r in self.reports.items()}}

    def __str__(self):
        lines = [f"tpref verify: {sum(r.ok for r in self.reports.values())} of "
                 f"{len(self.reports)} golden cases match"
                 + (f"; not in the candidate: {', '.join(self.not_checked)}"
                    if self.not_checked else "")]
        for name, r in self.reports.items():
            lines.append(f"  {name:<32} {'ok' if r.ok else 'DIVERGES'}"
                         + ("" if r.ok else f"  {r.first_divergence.check.label}"))
        for name, r in self.reports.items():
            if not r.ok:
                lines += ["", f"== {name}", str(r)]
        return "\n".join(lines)


def verify_golden(directory, candidate, *, dtype=None):
    """Check a candidate's outputs against a golden directory, from files alone.

    Parameters
    ----------
    directory : path
        Written by ``tpref golden --out`` / :func:`write_golden`.
    candidate : path of an .npz, or dict
        Keys ``<case>/<method>/<quantity>`` (module docstring).
    dtype : float32 or float64, optional
        The candidate's precision (default: its arrays' dtype).

    Returns
    -------
    GoldenReport
    """
    golden = {g.name: g for g in load_golden(directory)}
    cands = read_candidate(candidate)
    unknown = sorted(set(cands) - set(golden))
    if unknown:
        raise ValueError(f"candidate names cases the golden directory does not have: {unknown}; "
                         f"it has {sorted(golden)}")
    reports = {}
    for name in golden:
        if name in cands:
            try:
                reports[name] = compare(cands[name], golden[name], dtype=dtype)
            except (TypeError, ValueError) as err:
                raise type(err)(f"case {name}: {err}") from err
    return GoldenReport(reports, [n for n in golden if n not in cands])


# ----------------------------------------------------------------------------------------------
# command line


def _golden_cmd(args):
    manifest = write_golden(args.out, cell=args.cell, log=print)
    print(f"{len(manifest['cases'])} golden cases and {MANIFEST} in {args.out}")
    return 0


def _verify_cmd(args):
    try:
        report = verify_golden(args.golden, args.candidate)
    except GoldenFileError as err:
        print(f"tpref verify: error: {err}", file=sys.stderr)
        return 2
    print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_dict(), f, indent=1)
    return 0 if report.ok else 1


def register(subparsers):
    """Add ``tpref golden`` and ``tpref verify`` to the CLI's subparsers."""
    g = subparsers.add_parser("golden", help="write the verification cases' golden files "
                                             "(.npz + checksummed manifest.json)")
    g.add_argument("--out", required=True, help="directory to write")
    g.add_argument("--cell", default="all", choices=("rnn", "gru", "all"))
    g.set_defaults(func=_golden_cmd)
    v = subparsers.add_parser("verify", help="check a candidate .npz of your outputs against "
                                             "golden files (exit 1 when it diverges)")
    v.add_argument("--golden", required=True, help="directory written by `tpref golden`")
    v.add_argument("--candidate", required=True,
                   help=".npz keyed <case>/<method>/<quantity> (tpref.verify.golden)")
    v.add_argument("--json", default=None, help="also write the report as JSON here")
    v.set_defaults(func=_verify_cmd)
