"""Week 7 experiment: without 1/√d the softmax saturates as the head width grows; with it nothing moves."""

import json

import numpy as np
import pytest

from experiments.weekly import sdpa


@pytest.fixture(scope="module")
def tiny_run(tiny_experiment):
    return tiny_experiment("sdpa")


def test_writes_results_and_figures(tiny_run):
    out, m = tiny_run
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == json.loads(json.dumps(m))
    stems = ("sdpa_variance", "sdpa_entropy", "sdpa_gradients", "sdpa_causal_maps")
    assert sorted(m["figures"]) == sorted(f"{s}.{x}" for s in stems for x in ("png", "svg"))
    for name in m["figures"]:
        assert (out / name).stat().st_size > 0
    assert (m["name"], m["week"]) == (sdpa.NAME, sdpa.WEEK) == ("sdpa", 7)
    assert m["head_widths"] == list(sdpa.TINY_HEAD_WIDTHS)


def test_variance_matches_the_derivation(tiny_run):
    _, m = tiny_run
    v, band = m["variance"], m["variance"]["band"]
    assert v["predicted_raw"] == [float(d) for d in m["head_widths"]]   # Var(q·k) = K at K = d
    assert v["predicted_scaled"] == [1.0] * len(m["head_widths"])       # Var(q·k/√K) = 1
    np.testing.assert_allclose(v["raw"], v["predicted_raw"], rtol=band)
    np.testing.assert_allclose(v["scaled"], 1.0, rtol=band)


def test_without_the_scale_the_softmax_saturates(tiny_run):
    _, m = tiny_run
    e, w = m["entropy"], m["max_weight"]
    assert e["unscaled"][-1] < e["unscaled"][0] and e["unscaled"][-1] < 0.1 * e["uniform"]
    assert w["unscaled"][-1] > 0.9 > w["unscaled"][0]                   # rows near one-hot at d = 1024
    assert max(e["scaled"]) - min(e["scaled"]) < sdpa.FLAT_ENTROPY * e["uniform"]   # roughly flat
    assert 0 < min(e["scaled"]) and max(e["scaled"]) < e["uniform"]     # np.log(S) is the ceiling
    assert e["uniform"] == pytest.approx(np.log(m["setup"]["keys"]), rel=1e-6)


def test_without_the_scale_the_typical_gradient_vanishes(tiny_run):
    _, m = tiny_run
    g = m["gradient_q"]
    assert g["unscaled"]["median"][-1] < sdpa.VANISHED * g["unscaled"]["median"][0]
    assert max(g["scaled"]["median"]) < sdpa.FLAT_GRADIENT * min(g["scaled"]["median"])
    assert g["unscaled"]["median"][-1] < g["scaled"]["median"][-1]
    assert all(c["holds"] for c in m["claims"]), [c["claim"] for c in m["claims"] if not c["holds"]]


def test_causal_maps_are_causal_rows_of_weights(tiny_run):
    _, m = tiny_run
    c = m["causal_maps"]
    mask = np.asarray(c["mask"])
    assert mask.shape == (c["positions"],) * 2 and np.array_equal(mask, np.tril(np.ones_like(mask)))
    for kind in ("scaled", "unscaled"):
        w = np.asarray(c[kind])
        assert np.all(w[~mask] == 0) and np.all(w >= 0)
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.mean(c["entropy_unscaled"]) < np.mean(c["entropy_scaled"])


@pytest.mark.parametrize("scale", [0, -1, 1.5, "1", True])
def test_bad_scale_raises(tmp_path, scale):
    with pytest.raises(ValueError, match="scale"):
        sdpa.run(tmp_path, scale=scale, tiny=True, progress=False)
    assert not (tmp_path / "results.json").exists()
