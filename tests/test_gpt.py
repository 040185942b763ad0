"""The GPT (week 12): config and presets, the module == its pure functions, counts, bad input, jit, training."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import derivations
from model.attention import causal_mask
from model.block import transformer_block
from model.gpt import (
    GPT,
    PRESETS,
    GPTConfig,
    abstract_gpt,
    check_tokens,
    count_parameters,
    embed,
    lm_logits,
    param_count,
)
from model.loss import cross_entropy
from model.positional import apply_rotary, rotary_tables, sinusoidal_encoding

TINY = GPTConfig.tiny()
B, T = 2, 8
_rng = np.random.default_rng(0)
TOKENS = jnp.asarray(_rng.integers(0, TINY.vocab_size, (B, T)), jnp.int32)


@functools.partial(jax.jit, static_argnums=0)
def logits_fn(graphdef, state, tokens):
    """The model as a pure function of (graphdef, state, tokens): split/merge at the jit boundary."""
    return nnx.merge(graphdef, state)(tokens)


@functools.cache
def tiny_model(**changes) -> GPT:
    return GPT(dataclasses.replace(TINY, **changes), rngs=nnx.Rngs(0))


def _formula(config: GPTConfig) -> int:
    """The registered statement of ``gpt.param_count`` evaluated at ``config``."""
    d = derivations.get("gpt.param_count")
    s = {str(x): x for x in d.statement.rhs.free_symbols}
    value = d.statement.rhs.subs({
        s["V"]: config.vocab_size, s["T"]: config.context, s["D"]: config.d_model, s["F"]: config.d_ff,
        s["L"]: config.n_layers, s["tie_embeddings"]: int(config.tie_embeddings),
        s["learned_positions"]: int(config.positional == "learned"), s["biases"]: int(config.bias)})
    return int(sp.Integer(value))


# --- the forward pass ------------------------------------------------------------------------------


def test_forward_shape_and_dtype_batched_and_single_sequence():
    model = tiny_model()
    batched = model(TOKENS)
    assert batched.shape == (B, T, TINY.vocab_size) and batched.dtype == jnp.float32
    single = model(TOKENS[1])
    assert single.shape == (T, TINY.vocab_size)
    np.testing.assert_allclose(np.asarray(single), np.asarray(batched[1]), rtol=1e-5, atol=1e-6)
    assert bool(jnp.all(jnp.isfinite(batched)))


def _by_hand(model: GPT, tokens):
    """The forward pass from the pure functions and the module's parameters."""
    c = model.config
    t = tokens.shape[-1]
    pos = (model.wpe[...][:t] if c.positional == "learned"
           else sinusoidal_encoding(jnp.arange(t), d_model=c.d_model, base=c.pe_base))
    x = embed(tokens, model.wte[...], pos)
    for blk in model.blocks:
        a, f = blk.attn, blk.ffn
        x = transformer_block(x, blk.ln1.gamma[...], blk.ln1.beta[...], a.w_q[...], a.b_q[...], a.w_k[...],
                              a.b_k[...], a.w_v[...], a.b_v[...], a.w_o[...], a.b_o[...], blk.ln2.gamma[...],
                              blk.ln2.beta[...], f.w_1[...], f.b_1[...], f.w_2[...], f.b_2[...],
                              n_heads=a.n_heads, eps=c.eps, mask=causal_mask(t, t))
    head = model.wte[...].T if c.tie_embeddings else model.w_head[...]
    return lm_logits(x, model.ln_f.gamma[...], model.ln_f.beta[...], head, eps=c.eps)


@pytest.mark.parametrize("changes", [{}, {"tie_embeddings": False, "positional": "sinusoidal"}],
                         ids=["tied-learned", "untied-sinusoidal"])
def test_module_equals_the_pure_functions_with_its_parameters(changes):
    model = tiny_model(**changes)
    graphdef, state = nnx.split(model)
    got = logits_fn(graphdef, state, TOKENS)
    want = jax.jit(_by_hand)(model, TOKENS)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_jit_via_split_merge_equals_the_eager_module():
    model = tiny_model()
    eager = model(TOKENS)
    jitted = logits_fn(*nnx.split(model), TOKENS)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-6)


@settings(max_examples=10)
@given(arrays(np.int32, (B, T), elements=st.integers(0, TINY.vocab_size - 1)))
def test_a_prefix_gets_the_logits_it_gets_inside_a_longer_sequence(tokens):
    graphdef, state = nnx.split(tiny_model())
    full = logits_fn(graphdef, state, jnp.asarray(tokens))
    prefix = logits_fn(graphdef, state, jnp.asarray(tokens[:, :3]))
    np.testing.assert_allclose(np.asarray(prefix), np.asarray(full[:, :3]), rtol=1e-5, atol=1e-6)


def test_sinusoidal_model_has_no_position_parameters():
    model = tiny_model(positional="sinusoidal")
    assert not hasattr(model, "wpe")
    np.testing.assert_array_equal(np.asarray(model.positions(5)),
                                  np.asarray(sinusoidal_encoding(jnp.arange(5), d_model=TINY.d_model, base=10000.0)))
    assert count_parameters(model) == count_parameters(tiny_model()) - TINY.context * TINY.d_model


def test_gpt2_initialisation():
    model = tiny_model()
    std, residual = TINY.init_std, TINY.init_std / np.sqrt(2 * TINY.n_layers)
    for blk in model.blocks:
        for w, expected in ((blk.attn.w_q, std), (blk.ffn.w_1, std), (blk.attn.w_o, residual), (blk.ffn.w_2, residual)):
            assert abs(float(jnp.std(w[...])) / expected - 1) < 0.1  # >= 1024 draws: a few % of sampling error
        for b in (blk.attn.b_q, blk.attn.b_o, blk.ffn.b_1, blk.ffn.b_2, blk.ln1.beta):
            assert not bool(jnp.any(b[...]))
        assert bool(jnp.all(blk.ln2.gamma[...] == 1))
    assert abs(float(jnp.std(model.wte[...])) / std - 1) < 0.1


# --- weight tying ---------------------------------------------------------------------------------


def test_weight_tying():
    tied, untied = tiny_model(), tiny_model(tie_embeddings=False, positional="sinusoidal")
    assert not hasattr(tied, "w_head") and untied.w_head[...].shape == (TINY.d_model, TINY.vocab_size)
    np.testing.assert_array_equal(np.asarray(tied.head()), np.asarray(tied.wte[...]).T)
    assert count_parameters(untied) + TINY.context * TINY.d_model - count_parameters(tied) == (
        TINY.vocab_size * TINY.d_model)
    absent = min(set(range(TINY.vocab_size)) - set(np.asarray(TOKENS).ravel().tolist()))

    # token `absent` is not in the input: only a tied head reaches its row of W_E
    graphdef, state = nnx.split(tied)
    grads = jax.grad(lambda s: jnp.sum(logits_fn(graphdef, s, TOKENS)))(state)
    assert np.abs(np.asarray(grads["wte"][...][absent])).max() > 0
    graphdef, state = nnx.split(nnx.clone(untied))  # a copy: the cached model stays as it is
    before = logits_fn(graphdef, state, TOKENS)
    state["wte"][...] = state["wte"][...].at[absent].add(1.0)
    np.testing.assert_array_equal(np.asarray(logits_fn(graphdef, state, TOKENS)), np.asarray(before))


# --- presets and parameter counts ----------------------------------------------------------------


def test_presets():
    assert tuple(PRESETS) == ("tiny", "shakespeare-char", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")
    sc = GPTConfig.preset("shakespeare-char")
    assert (sc.n_layers, sc.n_heads, sc.d_model, sc.context, sc.d_ff, sc.vocab_size) == (4, 4, 128, 64, 512, 65)
    assert GPTConfig.preset("shakespeare-char", vocab_size=80) == dataclasses.replace(sc, vocab_size=80)
    for name, (d, n_layers, n_heads) in {"gpt2-small": (768, 12, 12), "gpt2-medium": (1024, 24, 16),
                                         "gpt2-large": (1280, 36, 20), "gpt2-xl": (1600, 48, 25)}.items():
        c = GPTConfig.preset(name)
        assert (c.vocab_size, c.context, c.d_model, c.n_layers, c.n_heads, c.d_ff) == (
            50257, 1024, d, n_layers, n_heads, 4 * d)
        assert c.tie_embeddings and c.bias and c.positional == "learned" and c.dropout == 0.0
    with pytest.raises(ValueError, match="unknown GPT preset 'gpt3'.*tiny, shakespeare-char, gpt2-small"):
        GPTConfig.preset("gpt3")


@pytest.mark.parametrize("name", list(PRESETS))
def test_param_count_formula_equals_the_built_model(name):
    config = GPTConfig.preset(name)
    model = abstract_gpt(config)  # shapes only, even for gpt2-xl
    assert isinstance(model.wte.get_value(), jax.ShapeDtypeStruct)
    assert model.wte.shape == (config.vocab_size, config.d_model) and len(model.blocks) == config.n_layers
    built = count_parameters(model)
    assert built == _formula(config)
    assert built == param_count(config.vocab_size, config.context, config.d_model, config.n_heads, config.d_ff,
                                config.n_layers, tie_embeddings=config.tie_embeddings, learned_positions=True)


def test_gpt2_counts_are_the_released_checkpoints():
    published = {"gpt2-small": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080,
                 "gpt2-xl": 1_557_611_200}
    for name, n in published.items():
        assert _formula(GPTConfig.preset(name)) == n, name


@pytest.mark.parametrize("changes", [{"tie_embeddings": False}, {"positional": "sinusoidal"},
                                     {"tie_embeddings": False, "positional": "sinusoidal"}])
def test_param_count_of_the_variants(changes):
    config = dataclasses.replace(TINY, **changes)
    assert count_parameters(abstract_gpt(config)) == _formula(config)


def test_param_count_rejects_non_flags():
    with pytest.raises(ValueError, match="tie_embeddings: expected True/False"):
        param_count(11, 5, 8, 2, 12, 1, tie_embeddings=2)


# --- bad input ------------------------------------------------------------------------------------


def test_out_of_range_tokens_are_named_with_their_position():
    model = tiny_model()
    bad = np.array(TOKENS)
    bad[1, 3] = TINY.vocab_size
    with pytest.raises(ValueError, match=r"\[0, 65\), got 65 at position \(1, 3\)"):
        model(bad)
    bad[0, 5] = -1
    with pytest.raises(ValueError, match=r"got -1 at position \(0, 5\)"):
        model(jnp.asarray(bad))


def test_too_long_empty_scalar_and_float_tokens():
    model = tiny_model()
    with pytest.raises(ValueError, match="33 positions, longer than the context of 32"):
        model(jnp.zeros((1, 33), jnp.int32))
    with pytest.raises(ValueError, match="at least one position"):
        model(jnp.zeros((2, 0), jnp.int32))
    with pytest.raises(ValueError, match=r"expected shape \[..., T\]"):
        model(jnp.int32(3))
    with pytest.raises(TypeError, match="integer token ids"):
        model(jnp.zeros((1, 4)))


def test_under_jit_lengths_are_still_checked_and_bad_ids_give_nan_not_a_clamped_row():
    graphdef, state = nnx.split(tiny_model())
    with pytest.raises(ValueError, match="longer than the context"):
        logits_fn(graphdef, state, jnp.zeros((1, 40), jnp.int32))
    bad = TOKENS.at[0, 4].set(TINY.vocab_size + 3)
    out = np.asarray(logits_fn(graphdef, state, bad))  # traced ids: not checked, so the caller must check
    assert np.isnan(out[0]).all()      # the whole sequence (0 × NaN in the masked attention products)
    assert np.isfinite(out[1]).all()   # the other sequence is untouched
    with pytest.raises(ValueError, match="got 68 at position"):
        check_tokens(bad, TINY.vocab_size, TINY.context)   # what the caller runs before the jit boundary


def test_embed_shape_errors():
    wte = jnp.zeros((5, 4))
    with pytest.raises(ValueError, match=r"wpe: expected shape \[T', D\] with T' >= T = 3 and D = 4"):
        embed(jnp.zeros(3, jnp.int32), wte, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="wpe"):
        embed(jnp.zeros(3, jnp.int32), wte, jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"w_head: expected shape \[D, V\] = \[4, V\]"):
        lm_logits(jnp.zeros((3, 4)), jnp.ones(4), jnp.zeros(4), jnp.zeros((5, 4)), eps=1e-5)


# --- config validation and saving ------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"n_heads": 3}, "d_model = 32 must be divisible by n_heads = 3"),
    ({"d_model": 0}, "d_model: expected a positive integer"),
    ({"n_layers": -1}, "n_layers: expected a positive integer"),
    ({"vocab_size": 65.0}, "vocab_size: expected a positive integer"),
    ({"context": True}, "context: expected a positive integer"),
    ({"positional": "alibi"}, r"positional: expected one of \('learned', 'sinusoidal', 'rotary', 'none'\), got 'alibi'"),
    ({"positional": "rotary", "d_model": 36, "n_heads": 4}, "expected an even head width"),
    ({"positional": "sinusoidal", "d_model": 33, "n_heads": 3}, "even width"),
    ({"dropout": 1.0}, r"dropout: expected a rate in \[0, 1\), got 1.0"),
    ({"dropout": -0.1}, r"dropout: expected a rate in \[0, 1\)"),
    ({"eps": 0.0}, "eps: expected a finite number > 0"),
    ({"init_std": -0.02}, "init_std: expected a finite number > 0"),
    ({"pe_base": float("inf")}, "pe_base: expected a finite number > 0"),
    ({"tie_embeddings": 1}, "tie_embeddings: expected True or False"),
])
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **changes)


def test_config_is_frozen_and_keyword_only():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY.d_model = 64  # type: ignore[misc]
    with pytest.raises(TypeError):
        GPTConfig(65, 32, 32, 2, 128, 2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="expected a GPTConfig"):
        GPT({"vocab_size": 65}, rngs=nnx.Rngs(0))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name, tmp_path):
    config = GPTConfig.preset(name)
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert GPTConfig.from_json(path.read_text()) == config
    assert GPTConfig.from_dict(json.loads(path.read_text())) == config


def test_from_dict_names_missing_and_unknown_keys():
    data = TINY.to_dict()
    del data["d_ff"]
    data["n_embd"] = 32
    with pytest.raises(ValueError, match=r"missing keys \['d_ff'\], unknown keys \['n_embd'\]"):
        GPTConfig.from_dict(data)
    with pytest.raises(ValueError, match="not valid JSON"):
        GPTConfig.from_json("{vocab_size: 65")
    with pytest.raises(TypeError, match="expected a dict"):
        GPTConfig.from_dict([("vocab_size", 65)])  # type: ignore[arg-type]
    bad = {**TINY.to_dict(), "n_heads": 5}
    with pytest.raises(ValueError, match="divisible by n_heads = 5"):
        GPTConfig.from_dict(bad)


# --- training -------------------------------------------------------------------------------------


def test_adamw_steps_reduce_the_loss_on_a_fixed_batch():
    model = GPT(TINY, rngs=nnx.Rngs(1))
    batch = jnp.asarray(np.random.default_rng(1).integers(0, TINY.vocab_size, (4, 17)), jnp.int32)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    check_tokens(batch, TINY.vocab_size, TINY.context + 1)  # checked before the jit boundary
    graphdef, params = nnx.split(model)
    opt = optax.adamw(3e-3, weight_decay=0.1)
    opt_state = opt.init(params)

    def loss_fn(params):
        return jnp.mean(cross_entropy(nnx.merge(graphdef, params)(inputs), targets))

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(8):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert abs(losses[0] - np.log(TINY.vocab_size)) < 0.1  # small init: nearly uniform predictions
    assert losses[-1] < losses[0] - 0.5, losses
    assert all(np.isfinite(losses))


def test_activation_is_a_validated_config_field_and_gpt2_presets_use_gelu():
    assert all(GPTConfig.preset(n).activation == "gelu_tanh" for n in PRESETS if n.startswith("gpt2"))
    assert GPTConfig.tiny().activation == "relu"
    with pytest.raises(ValueError, match="activation: expected one of"):
        GPTConfig.tiny(activation="swish")
    model = GPT(GPTConfig.tiny(activation="gelu"), rngs=nnx.Rngs(0))
    assert all(b.ffn.activation == "gelu" for b in model.blocks)


# --- biases and dropout ----------------------------------------------------------------------------


def test_without_biases_the_count_drops_by_the_formula():
    config = dataclasses.replace(TINY, bias=False)
    model = tiny_model(bias=False)
    assert count_parameters(model) == _formula(config)
    assert count_parameters(tiny_model()) - count_parameters(model) == TINY.n_layers * (TINY.d_ff + 7 * TINY.d_model) \
        + TINY.d_model
    names = {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    assert not [n for n in names if n.rsplit("/", 1)[-1].startswith(("b_", "beta"))]
    assert np.isfinite(np.asarray(model(TOKENS))).all()


def test_dropout_only_with_a_key():
    model = tiny_model(dropout=0.25)
    plain = tiny_model()
    key = jax.random.key(3)
    forward = nnx.jit(lambda m, x, k: m(x, dropout_key=k))
    np.testing.assert_array_equal(np.asarray(model(TOKENS)), np.asarray(plain(TOKENS)))  # no key: no dropout
    a, b = forward(model, TOKENS, key), forward(model, TOKENS, key)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the key decides the masks
    c = forward(model, TOKENS, jax.random.key(4))
    assert not np.allclose(np.asarray(a), np.asarray(c))
    assert not np.allclose(np.asarray(a), np.asarray(plain(TOKENS)))
    no_key = nnx.jit(lambda m, x: m(x))
    np.testing.assert_array_equal(np.asarray(forward(plain, TOKENS, key)), np.asarray(no_key(plain, TOKENS)))  # rate 0


# --- rotary positions ------------------------------------------------------------------------------


def test_rotary_model_equals_blocks_with_rotated_queries_and_keys():
    """A rotary GPT adds no position vectors and rotates q and k in every block; it is causal and has no wpe."""
    model = tiny_model(positional="rotary")
    assert not hasattr(model, "wpe")
    c = model.config
    cos, sin = rotary_tables(jnp.arange(T), head_dim=c.d_model // c.n_heads, base=c.pe_base)
    x = model.wte[...][TOKENS]
    for block in model.blocks:
        x = transformer_block(x, **block.params(), n_heads=c.n_heads, eps=c.eps, mask=causal_mask(T, T),
                              activation=c.activation, rope=functools.partial(apply_rotary, cos=cos, sin=sin))
    expected = lm_logits(x, model.ln_f.gamma[...], model.ln_f.beta[...], model.wte[...].T, eps=c.eps)
    np.testing.assert_allclose(np.asarray(model(TOKENS)), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_rotary_model_sees_relative_positions_only():
    """A sequence at positions 0..3 and the same sequence at positions 3..6 (behind a prefix that attention
    cannot see) give the same logits: with rotary positions only differences of positions matter."""
    model = tiny_model(positional="rotary")
    c = model.config
    seq = TOKENS[0, :4]
    full = jnp.concatenate([TOKENS[1, :3], seq])  # three tokens, then the sequence at positions 3..6
    cos, sin = rotary_tables(jnp.arange(full.shape[0]), head_dim=c.d_model // c.n_heads, base=c.pe_base)
    mask = causal_mask(7, 7) & (jnp.arange(7)[None, :] >= 3)  # the prefix hidden from every query
    x = model.wte[...][full]
    for block in model.blocks:
        x = transformer_block(x, **block.params(), n_heads=c.n_heads, eps=c.eps, mask=mask,
                              activation=c.activation, rope=functools.partial(apply_rotary, cos=cos, sin=sin))
    shifted = lm_logits(x, model.ln_f.gamma[...], model.ln_f.beta[...], model.wte[...].T, eps=c.eps)[3:]
    np.testing.assert_allclose(np.asarray(shifted), np.asarray(model(seq)), rtol=1e-4, atol=1e-5)


def test_no_positions_has_no_table_and_runs():
    """positional="none": no [T, D] table, nothing added to the embeddings; the first row sees its token only."""
    model = tiny_model(positional="none")
    assert count_parameters(model) == count_parameters(tiny_model()) - TINY.context * TINY.d_model
    a = np.asarray(model(TOKENS))
    b = np.asarray(model(TOKENS[:, :1]))
    np.testing.assert_allclose(a[:, 0], b[:, 0], rtol=1e-5, atol=1e-6)
