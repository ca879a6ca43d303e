"""The plain-array path for JAX users: a jax.numpy TP for the simple RNN (tests/planted_jax.py,
written from the paper) checked by ``tpref.verify.compare`` and through the golden files, with
one planted bug caught and localized. Skipped where JAX is not installed."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)                  # float64 for the float64 check

import tpref  # noqa: E402
from tpref import verify  # noqa: E402
from tpref.verify.adapter import ArrayAdapter  # noqa: E402

import planted_jax  # noqa: E402

OPTIONS = ("loss", "gamma_h", "reg", "update", "activation", "clip_eps")


def jax_run(case, dtype=np.float64, bugs=()):
    """The JAX user's outputs on ``case`` as a compare candidate (time-major plain arrays)."""
    params = {n: a.astype(dtype) for n, a in case.params.items()}
    y = case.y.astype(dtype) if case.y.dtype.kind == "f" else case.y
    out = planted_jax.tp(params, case.x.astype(dtype), y, bugs=bugs,
                         **{k: case.kwargs[k] for k in OPTIONS if k in case.kwargs})
    ad = ArrayAdapter(batch_first=False)
    ad.inputs(case.x, case.y)
    return ad.candidate(loss=out["loss"], hidden=out["hidden"],
                        displacements=out["displacements"], direction=out["direction"])


def reference(case):
    return tpref.oracle("tp", case.params, case.x, case.y, **dict(case.kwargs, backend="numpy"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_jax_tp_passes_every_case(dtype):
    for case in verify.cases(cell="rnn"):
        report = verify.compare(jax_run(case, dtype), reference(case))
        assert report.ok, f"false alarm on {case.name} ({np.dtype(dtype)}):\n{report}"


def test_jax_missing_clip_is_caught_where_units_saturate():
    """Planted in the JAX TP: no clip before (a^-1)'. Found on the cases whose units saturate,
    at lam_{t*-1} for the last saturated step t*, and nowhere else."""
    caught = []
    for case in verify.cases(cell="rnn"):
        ref = reference(case)
        report = verify.compare(jax_run(case, bugs=("no_clip",)), ref)
        eps = case.kwargs.get("clip_eps", 1e-3)
        h = ref.hidden[1:].reshape(ref.hidden.shape[0] - 1, -1)
        sat = ((np.abs(h) > 1 - eps) if case.kwargs.get("activation", "tanh") == "tanh"
               else (h < eps) | (h > 1 - eps)).any(axis=1)
        if not sat.any():
            assert report.ok, str(report)
            continue
        t_star = int(np.flatnonzero(sat).max()) + 1
        f = report.first_divergence
        assert (f.quantity, f.step) == ("displacements", t_star - 1), str(report)
        caught.append(case.name)
    assert caught


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """The simple RNN's golden files, as a JAX user downloads them."""
    out = tmp_path_factory.mktemp("golden")
    verify.write_golden(str(out), cell="rnn")
    return out


def golden_candidate(golden, bugs=()):
    """The JAX TP run on every TP golden case, from the files alone, as candidate keys."""
    flat = {}
    for g in verify.load_golden(str(golden)):
        if g.method != "tp":
            continue
        out = planted_jax.tp(g.params, g.x, g.y, bugs=bugs,
                             **{k: g.options[k] for k in OPTIONS if k in g.options})
        flat[f"{g.name}/loss"] = np.asarray(out["loss"])
        for q in ("hidden", "displacements"):
            flat[f"{g.name}/{q}"] = np.asarray(out[q])
        for n, a in out["direction"].items():
            flat[f"{g.name}/direction/{n}"] = np.asarray(a)
    return flat


def test_jax_tp_through_the_golden_files(golden, tmp_path):
    """The JAX user needs no tpref port: a candidate .npz checked by `tpref verify`. Correct:
    exit 0. With the clip forgotten: exit 1, and the report puts the saturated case's fault at
    lam_{t*-1}."""
    import subprocess
    import sys

    good = tmp_path / "good.npz"
    np.savez(good, **golden_candidate(golden))
    report = verify.verify_golden(str(golden), str(good))
    assert report.ok and report.reports, str(report)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **golden_candidate(golden, bugs=("no_clip",)))
    run = subprocess.run([sys.executable, "-m", "tpref", "verify", "--golden", str(golden),
                          "--candidate", str(bad)], capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    report = verify.verify_golden(str(golden), str(bad))
    saturated = report.reports["rnn-saturated/tp"]
    g = next(g for g in verify.load_golden(str(golden)) if g.name == "rnn-saturated/tp")
    h = g.f64["hidden"][1:]
    t_star = int(np.flatnonzero((np.abs(h) > 1 - 1e-3).reshape(len(h), -1).any(axis=1)).max()) + 1
    f = saturated.first_divergence
    assert (f.quantity, f.step) == ("displacements", t_star - 1), str(saturated)
    assert f"displacements[t={t_star - 1}]" in run.stdout
