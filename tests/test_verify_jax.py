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
