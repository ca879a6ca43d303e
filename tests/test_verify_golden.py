"""Golden files: write, verify from files alone, and refuse tampered or truncated files."""

import json
import os
import shutil

import numpy as np
import pytest

import tpref
from tpref.cli import main
from tpref.verify import GoldenFileError, cases, load_golden, verify_golden, write_golden
from tpref.verify.golden import read_candidate


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    write_golden(str(out), cell="all")
    return out


def _candidate(dtype, names=None):
    """A flat candidate dict of tpref's own (numpy) run in ``dtype`` for every golden case."""
    flat = {}
    for c in cases("all"):
        for m in dict.fromkeys((c.method, "bp")):
            name = f"{c.name}/{m}"
            if names is not None and name not in names:
                continue
            r = c.oracle(m, dtype=dtype)
            flat[f"{name}/loss"] = np.asarray(r.loss, dtype=dtype)
            flat[f"{name}/hidden"] = r.hidden
            if r.displacements is not None:
                flat[f"{name}/displacements"] = r.displacements
                flat[f"{name}/targets"] = r.targets
            for n, a in r.direction.items():
                flat[f"{name}/direction/{n}"] = a
    return flat


def test_manifest(golden):
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["format"] == "tpref-golden" and manifest["tpref_version"] == tpref.__version__
    assert "layout" in manifest["conventions"] and manifest["tolerance_policy"]["SAFETY"] == 4.0
    names = [e["name"] for e in manifest["cases"]]
    assert len(names) == 2 * len(list(cases("all")))
    for e in manifest["cases"]:
        assert len(e["sha256"]) == 64 and (golden / e["file"]).is_file()
        assert set(e["shapes"]) == {"T", "B", "d", "p", "k"}
    with np.load(golden / "rnn-saturated__tp.npz") as data:
        keys = set(data.files)
        assert {"x", "y", "params/W_hh", "f64/hidden", "f32/hidden", "f64/displacements",
                "tol32/hidden", "tol64/direction/W_hh", "f64/direction/b_h"} <= keys
        assert data["f32/hidden"].dtype == np.float32 and data["f64/hidden"].dtype == np.float64


def test_golden_values_are_tprefs(golden):
    case = next(iter(cases("rnn")))
    g = {c.name: c for c in load_golden(str(golden))}[f"{case.name}/{case.method}"]
    res = case.oracle()
    np.testing.assert_array_equal(g.f64["displacements"], res.displacements)
    assert g.f64["loss"] == res.loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_correct_candidate_passes_from_files(golden, tmp_path, dtype):
    path = tmp_path / "cand.npz"
    np.savez(path, **_candidate(dtype))
    report = verify_golden(str(golden), str(path))
    assert report.ok, str(report)
    assert not report.not_checked
    json.dumps(report.to_dict())


def test_divergence_is_localized_and_partial_candidates(golden):
    names = {"rnn-reg-small-grow/tp", "gru-saturated-gates/tp"}
    flat = _candidate(np.float32, names)
    lam = flat["rnn-reg-small-grow/tp/displacements"].copy()
    lam[6] *= 1.02
    flat["rnn-reg-small-grow/tp/displacements"] = lam
    report = verify_golden(str(golden), flat)
    assert not report.ok
    first = report.reports["rnn-reg-small-grow/tp"].first_divergence
    assert (first.quantity, first.step) == ("displacements", 6)
    assert report.reports["gru-saturated-gates/tp"].ok
    assert len(report.not_checked) == 2 * len(list(cases("all"))) - 2
    assert "DIVERGES" in str(report)


def test_tampered_and_truncated_files_are_refused(golden, tmp_path):
    for how in ("tamper", "truncate"):
        d = tmp_path / how
        shutil.copytree(golden, d)
        target = d / "rnn-saturated__tp.npz"
        raw = bytearray(target.read_bytes())
        if how == "tamper":
            raw[len(raw) // 2] ^= 0x01
        else:
            raw = raw[: len(raw) // 2]
        target.write_bytes(bytes(raw))
        with pytest.raises(GoldenFileError, match="checksum"):
            load_golden(str(d))
    d = tmp_path / "missing"
    shutil.copytree(golden, d)
    os.remove(d / "gru-exact__tp.npz")
    with pytest.raises(GoldenFileError, match="missing"):
        load_golden(str(d))
    with pytest.raises(GoldenFileError, match="no manifest.json"):
        load_golden(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(GoldenFileError, match="unreadable"):
        load_golden(str(tmp_path))


def test_bad_candidates(golden, tmp_path):
    with pytest.raises(ValueError, match="not <case>/<method>/<quantity>"):
        read_candidate({"hidden": np.zeros(3)})
    with pytest.raises(ValueError, match="does not have"):
        verify_golden(str(golden), {"no-such-case/tp/hidden": np.zeros((2, 1, 1))})
    with pytest.raises(ValueError, match="case rnn-saturated/tp: .*batch-first"):
        T, B, _ = next(iter(cases("rnn"))).x.shape
        p = next(iter(cases("rnn"))).params["W_hh"].shape[0]
        verify_golden(str(golden), {"rnn-saturated/tp/hidden": np.zeros((B, T + 1, p))})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        verify_golden(str(golden), str(tmp_path / "junk.npz"))


def test_cli_golden_and_verify(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["golden", "--out", str(out), "--cell", "rnn"]) == 0
    assert "golden cases" in capsys.readouterr().out
    good = tmp_path / "good.npz"
    flat = _candidate(np.float32, {"rnn-saturated/tp", "rnn-sigmoid-mse/bp"})
    np.savez(good, **flat)
    assert main(["verify", "--golden", str(out), "--candidate", str(good),
                 "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True
    h = flat["rnn-saturated/tp/hidden"].copy()
    h[2] *= 1.01
    np.savez(tmp_path / "bad.npz", **dict(flat, **{"rnn-saturated/tp/hidden": h}))
    capsys.readouterr()
    assert main(["verify", "--golden", str(out), "--candidate", str(tmp_path / "bad.npz")]) == 1
    assert "hidden[t=2]" in capsys.readouterr().out
    raw = (out / "rnn-saturated__tp.npz").read_bytes()
    (out / "rnn-saturated__tp.npz").write_bytes(raw[:-10])
    assert main(["verify", "--golden", str(out), "--candidate", str(good)]) == 2
    assert "checksum" in capsys.readouterr().err
    assert main(["verify", "--golden", str(out), "--candidate", str(tmp_path / "nope.npz")]) == 2
