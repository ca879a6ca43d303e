"""The torch adapter and the plain-array path of tpref.verify: round trips, the bias rule,
layout checks. (The planted-bug suites that use them: test_verify_planted*.py.)"""

import subprocess
import sys

import numpy as np
import pytest

import tpref
from tpref import verify
from tpref.config import GRU_PARAM_NAMES, RNN_PARAM_NAMES
from tpref.verify.adapter import ArrayAdapter

torch = pytest.importorskip("torch")
from tpref.verify.torch_adapter import TorchAdapter  # noqa: E402


class Model(torch.nn.Module):
    """What a user writes: a recurrent layer and a linear head, under their own names."""

    def __init__(self, d, p, k, *, cell="rnn", batch_first=True):
        super().__init__()
        layer = torch.nn.RNN if cell == "rnn" else torch.nn.GRU
        self.encoder = layer(d, p, batch_first=batch_first)
        self.readout = torch.nn.Linear(p, k)

    def forward(self, x):
        H, _ = self.encoder(x)
        return H, self.readout(H[:, -1] if self.encoder.batch_first else H[-1])


def model_and_batch(cell, batch_first, dtype=torch.float64, T=7, B=5, d=3, p=4, k=3, seed=0):
    torch.manual_seed(seed)
    model = Model(d, p, k, cell=cell, batch_first=batch_first).to(dtype)
    with torch.no_grad():                       # both biases nonzero, so the rule matters
        for name, q in model.named_parameters():
            if "bias" in name:
                q.normal_()
    x = torch.randn((B, T, d) if batch_first else (T, B, d), dtype=dtype)
    y = torch.randint(0, k, (B,))
    return model, x, y


@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_bp_through_the_adapter_matches_the_oracle(cell, batch_first):
    """A torch model's BP, read through the adapter, equals tpref's BP on its params."""
    model, x, y = model_and_batch(cell, batch_first)
    H, out = model(x)
    L = torch.nn.functional.cross_entropy(out, y)
    L.backward()
    ad = TorchAdapter(model)
    assert ad.cell == cell and ad.batch_first is batch_first
    xs, ys = ad.inputs(x, y)
    ref = tpref.oracle("bp", ad.params, xs, ys, loss="cross_entropy", cell=cell, backend="numpy")
    cand = ad.candidate(loss=L, hidden=H, direction=model)
    assert abs(cand["loss"] - ref.loss) < 1e-12
    np.testing.assert_allclose(cand["hidden"], ref.hidden, rtol=0, atol=1e-13)
    assert set(cand["direction"]) == set(ref.direction)
    for name, g in ref.direction.items():
        np.testing.assert_allclose(cand["direction"][name], g, rtol=1e-10, atol=1e-14, err_msg=name)
    # and back: tpref's results as tensors in the model's layout, under its names
    back = ad.to_torch(ref)
    torch.testing.assert_close(back["hidden"][:, 1:] if batch_first else back["hidden"][1:],
                               H.detach(), rtol=0, atol=1e-13)
    for name, q in model.named_parameters():
        torch.testing.assert_close(back["direction"][name], q.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_state_dict_round_trip_with_prefixed_names(cell):
    """module.state_dict() (prefixed names) -> tpref params -> state_dict: the same entries
    (nn.RNN's bias_ih_l0 up to the rounding of (b_ih + b_hh) - b_hh), and a fresh module loaded
    from tpref params computes the same hidden states."""
    model, x, y = model_and_batch(cell, True, dtype=torch.float32)
    sd = model.state_dict()
    ad = TorchAdapter(sd, batch_first=True)
    params = ad.params
    assert params[next(iter(params))].dtype == np.float32
    assert set(params) == set(RNN_PARAM_NAMES if cell == "rnn" else GRU_PARAM_NAMES)
    back = ad.state_dict(params)
    assert sorted(back) == sorted(sd)
    for name in sd:
        atol = 1e-6 if name.endswith("bias_ih_l0") and cell == "rnn" else 0
        torch.testing.assert_close(back[name], sd[name], rtol=0, atol=atol)
    fresh, _, _ = model_and_batch(cell, True, dtype=torch.float32, seed=1)
    TorchAdapter(fresh).load(params)
    torch.testing.assert_close(fresh(x)[0], model(x)[0], rtol=0, atol=1e-6)


def test_bias_rule_for_gradients():
    """Both bias gradients of nn.RNN are one b_h direction. The old trap (passing both through
    rnn_params_from_torch) doubles it; rnn_grads_from_torch and the adapter do not, and two
    bias gradients that differ are refused with an error that says why."""
    model, x, y = model_and_batch("rnn", True)
    H, out = model(x)
    torch.nn.functional.cross_entropy(out, y).backward()
    ad = TorchAdapter(model)
    xs, ys = ad.inputs(x, y)
    ref = tpref.oracle("bp", ad.params, xs, ys, loss="cross_entropy", backend="numpy")
    grads = {name.split(".")[-1]: q.grad.numpy() for name, q in model.named_parameters()}
    doubled = tpref.rnn_params_from_torch(grads)["b_h"]            # the trap: values' rule
    np.testing.assert_allclose(doubled, 2 * ref.direction["b_h"], rtol=1e-12)
    np.testing.assert_allclose(tpref.rnn_grads_from_torch(grads)["b_h"], ref.direction["b_h"],
                               rtol=1e-12)
    np.testing.assert_allclose(ad.direction()["b_h"], ref.direction["b_h"], rtol=1e-12)
    only_one = {k: v for k, v in grads.items() if k != "bias_hh_l0"}
    np.testing.assert_allclose(ad.direction(only_one)["b_h"], ref.direction["b_h"], rtol=1e-12)
    with pytest.raises(ValueError, match="never their sum"):
        ad.direction(dict(grads, bias_hh_l0=np.zeros_like(grads["bias_hh_l0"])))
    # tpref -> torch: both biases get b_h's direction, as autograd gives them
    back = ad.direction_to_torch(ref.direction)
    torch.testing.assert_close(back["encoder.bias_ih_l0"], model.encoder.bias_hh_l0.grad)
    torch.testing.assert_close(back["encoder.bias_hh_l0"], model.encoder.bias_hh_l0.grad)


def test_layout_errors_name_the_array():
    """Batch-first arrays where time-major ones are declared (and back) are told apart from
    their shapes wherever B differs from T and T + 1, and the error says so."""
    model, x, y = model_and_batch("rnn", True)
    ad = TorchAdapter(model)
    with pytest.raises(ValueError, match="x looks time-major"):
        ad.inputs(x.transpose(0, 1), y)
    ad.inputs(x, y)
    H, _ = model(x)
    with pytest.raises(ValueError, match="hidden .* looks time-major"):
        ad.candidate(hidden=H.transpose(0, 1))
    tm = ArrayAdapter(batch_first=False)
    with pytest.raises(ValueError, match="x looks batch-first"):
        tm.inputs(x.numpy(), y.numpy())
    tm.inputs(x.transpose(0, 1).numpy(), y.numpy())
    with pytest.raises(ValueError, match="displacements .* looks batch-first"):
        tm.candidate(displacements=np.zeros((5, 8, 4)))
    with pytest.raises(ValueError, match=r"expected \(8, 5, \.\.\.\)"):
        tm.candidate(displacements=np.zeros((7, 5, 4)))          # v_0 missing: T, not T + 1
    with pytest.raises(TypeError, match="batch_first must be True"):
        ArrayAdapter(batch_first=None)
    with pytest.raises(ValueError, match="batch_first must be given"):
        TorchAdapter(model.state_dict())
    with pytest.raises(ValueError, match="call inputs"):
        ArrayAdapter(batch_first=True).candidate(hidden=np.zeros((5, 8, 4)))


def test_models_tpref_cannot_check_are_refused():
    with pytest.raises(ValueError, match="nonlinearity='tanh'"):
        TorchAdapter(torch.nn.RNN(2, 3, nonlinearity="relu"), torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="one layer"):
        TorchAdapter(torch.nn.GRU(2, 3, num_layers=2), torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="pass head="):
        TorchAdapter(torch.nn.RNN(2, 3))
    two_heads = torch.nn.ModuleDict({"rnn": torch.nn.RNN(2, 3), "a": torch.nn.Linear(3, 2),
                                     "b": torch.nn.Linear(3, 4)})
    with pytest.raises(ValueError, match="exactly one output layer"):
        TorchAdapter(two_heads)
    ad = TorchAdapter(torch.nn.RNN(2, 3), torch.nn.Linear(3, 2))        # bare layer + head
    assert set(ad.params) == set(RNN_PARAM_NAMES)


def test_plain_array_path_imports_no_framework():
    code = ("import sys, tpref.verify, tpref.verify.adapter; "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_oracle_says_when_x_looks_batch_first(cell):
    """Batch-first x given to tpref.oracle used to fail on y's shape; now the error names x's
    layout (B != T; when B == T no shape can tell, hence the adapters' explicit batch_first)."""
    init = tpref.init_rnn if cell == "rnn" else tpref.init_gru
    params = init(3, 4, 2, seed=0)
    x = np.zeros((5, 7, 3))                                    # (B, T, d) with B = 5
    with pytest.raises(ValueError, match=r"x looks batch-first \(B, T, d\)"):
        tpref.oracle("bp", params, x, np.zeros(5, dtype=int), loss="cross_entropy", cell=cell)
    tpref.oracle("bp", params, np.swapaxes(x, 0, 1), np.zeros(5, dtype=int),
                 loss="cross_entropy", cell=cell)


@pytest.mark.parametrize("batch_first", [True, False])
def test_tp_results_come_back_in_the_users_layout(batch_first):
    """to_torch / to_arrays: targets and displacements (T+1 steps) in the user's layout, the
    loss and logits as they are, and the candidate built from them is tpref's own result."""
    model, x, y = model_and_batch("rnn", batch_first)
    ad = TorchAdapter(model)
    xs, ys = ad.inputs(x, y)
    ref = tpref.oracle("tp", ad.params, xs, ys, loss="cross_entropy", gamma_h=0.1, reg=0.5,
                       backend="numpy")
    back = ad.to_torch(ref)
    T1, B, p = ref.hidden.shape
    for q in ("hidden", "targets", "displacements"):
        assert back[q].shape == ((B, T1, p) if batch_first else (T1, B, p))
        np.testing.assert_array_equal(ad.from_time_major(getattr(ref, q)), back[q].numpy())
    assert float(back["loss"]) == ref.loss and back["output"].shape == ref.output.shape
    cand = ad.candidate(loss=back["loss"], hidden=back["hidden"], targets=back["targets"],
                        displacements=back["displacements"], direction=back["direction"])
    assert verify.compare(cand, ref).ok
