"""The week-10 experiment: the sinusoidal table, its Gram matrix, and sequence reversal per encoding (tiny run)."""

import json
from itertools import pairwise

import numpy as np
import pytest

from experiments.weekly import positional

STEMS = ("positional_table", "positional_gram", "positional_reversal_training", "positional_reversal_accuracy",
         "positional_learned_table")


# Trains several small models: run with the slower checks (`pytest -m slow`, as .ci/run does),
# which keeps the default suite under five minutes on two cores.
pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def results(tiny_experiment):
    return tiny_experiment("positional")


def test_writes_results_and_figures(results):
    out, m = results
    on_disk = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert on_disk["name"] == positional.NAME == "positional" and on_disk["week"] == positional.WEEK == 10
    assert set(on_disk["summary"]) == set(positional.POSITIONAL)
    for stem in STEMS:
        for suffix in ("png", "svg"):
            assert (out / f"{stem}.{suffix}").stat().st_size > 0
            assert f"{stem}.{suffix}" in m["figures"]


def test_accuracies_are_fractions(results):
    _, m = results
    task = positional.ReversalTask.tiny()
    for r in m["reversal"]["runs"]:
        assert len(r["train_loss"]) == task.steps and all(np.isfinite(r["train_loss"]))
        for point in r["heldout_curve"]:
            assert 0.0 <= point["exact_match"] <= point["token_accuracy"] <= 1.0
            assert len(point["position_accuracy"]) == task.length
            assert all(0.0 <= a <= 1.0 for a in point["position_accuracy"])
            assert np.isclose(np.mean(point["position_accuracy"]), point["token_accuracy"])


def test_gram_rows_are_shifts_of_each_other(results):
    _, m = results
    g = np.asarray(m["gram"]["values"])
    tol = m["gram"]["tolerance"]
    assert g.shape == (positional.TABLE_POSITIONS, positional.TABLE_POSITIONS)
    # row p + 1 is row p moved one place to the right: G[p + 1, q + 1] = G[p, q]
    assert np.max(np.abs(g[1:, 1:] - g[:-1, :-1])) <= tol
    assert np.allclose(np.diag(g), positional.TABLE_WIDTH / 2, atol=tol)  # PE(p)·PE(p) = D/2
    assert np.allclose(g, g.T, atol=tol)
    assert m["gram"]["diagonal_spread"] == positional.gram_spread(g) <= tol
    assert m["claims"][0]["holds"]


def test_a_positional_encoding_beats_none_after_a_few_steps(results):
    _, m = results
    acc = {k: v["token_accuracy"]["mean"] for k, v in m["summary"].items()}
    assert max(acc[k] for k in ("sinusoidal", "learned", "rotary")) > acc["none"]
    assert m["summary"]["none"]["exact_match"]["mean"] < 1.0


def test_the_same_seed_gives_the_same_token_embeddings(results):
    _, m = results
    norms = {r["positional"]: r["initial_norms"] for r in m["reversal"]["runs"]}
    # none, sinusoidal and rotary draw the same weights; none and rotary add nothing before the blocks
    assert norms["none"]["token"] == norms["sinusoidal"]["token"] == norms["rotary"]["token"]
    assert norms["none"]["position"] == norms["rotary"]["position"] == 0.0
    scale = m["embedding_scale"]
    assert scale["sinusoidal_position_norm"] == pytest.approx(np.sqrt(positional.ReversalTask.tiny()
                                                                      .model_config("sinusoidal").d_model / 2))
    assert scale["sinusoidal_position_norm"] > 10 * scale["token_embedding_norm"]


def test_reversal_batch_and_bag_of_symbols_level():
    rng = np.random.default_rng(1)
    x, y = positional.reversal_batch(rng, 64, 5, 4)
    assert x.shape == y.shape == (64, 10) and x.dtype == np.int32
    assert (x[:, 5] == 4).all()  # the separator
    assert (y[:, 5:] == x[:, 4::-1]).all()  # the answers are the symbols reversed
    level = positional.bag_of_symbols_accuracy(x, 5, 4)
    assert level[-1] == 1.0 and all(0.25 <= a <= 1.0 for a in level)
    assert all(b >= a for a, b in pairwise(level))  # fewer symbols left, easier to guess


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        positional.run(tmp_path, scale=0, tiny=True, progress=False)
    with pytest.raises(ValueError, match="symbols"):
        positional.ReversalTask(length=4, symbols=1, steps=10, batch_size=4, lr=1e-2, min_lr=1e-3,
                                warmup_steps=1, heldout=8, eval_every=5)
