r"""The pre-LN transformer block (week 11).

.. math:: h = x + \operatorname{MHA}(\operatorname{LN}_1(x)), \qquad
          y = h + \operatorname{FFN}(\operatorname{LN}_2(h))

Axis letters: T positions, S cache positions, D model width, H heads, K = D / H head
width, F feed-forward hidden width; any leading axes (batch ``B``) are carried through
unchanged as ``...``.

The two residual sublayers are the verified equations (``block.attention_sublayer``,
``block.ffn_sublayer``); :func:`transformer_block` is the second applied to the
first, composed from :func:`model.normalization.layer_norm`,
:func:`model.multihead.multi_head_attention`, :func:`model.feedforward.feed_forward`
and :func:`model.residual.residual`.

Hooks for a GPT, all off by default (the registered equations are the defaults):
``rope`` (a callable on the per-head queries and keys, see
:func:`model.multihead.multi_head_attention`), ``dropout`` (a callable on each residual
branch before it is added to the stream), biases that may be ``None``
(``TransformerBlock(..., use_bias=False)``), and key/value-cache decoding
(:func:`transformer_block_cached`, :meth:`TransformerBlock.decode`).
"""

from __future__ import annotations

from collections.abc import Callable

from flax import nnx

from model.equation import implements
from model.feedforward import FFN_BY_ACTIVATION, FeedForward
from model.multihead import MultiHeadAttention, multi_head_attention, multi_head_attention_cached
from model.normalization import LayerNorm, layer_norm
from model.residual import residual
from model.validate import check_positive_int, check_rank

__all__ = ["TransformerBlock", "attention_sublayer", "ffn_sublayer", "transformer_block",
           "transformer_block_cached"]


def _check_callable(name: str, f) -> None:
    if f is not None and not callable(f):
        raise TypeError(f"{name}: expected a callable or None, got {type(f).__name__}")


def _branch(f: Callable, dropout: Callable | None) -> Callable:
    """The residual branch ``u -> dropout(f(u))`` (``f`` itself without dropout)."""
    if dropout is None:
        return f
    return lambda u: dropout(f(u))


def _check_activation(activation: str):
    if activation not in FFN_BY_ACTIVATION:
        raise ValueError(f"activation: expected one of {tuple(FFN_BY_ACTIVATION)}, got {activation!r}")
    return FFN_BY_ACTIVATION[activation]


@implements("block.attention_sublayer")
def attention_sublayer(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, *,
                       n_heads: int, eps, mask=None, rope: Callable | None = None,
                       dropout: Callable | None = None):
    r"""The pre-LN attention sublayer, :math:`h = x + \delta\bigl(\operatorname{MHA}(\operatorname{LN}_1(x), M)\bigr)`.

    :math:`\delta` is ``dropout``, the identity by default (the registered statement).

    Args:
        x: the residual stream ``[..., T, D]``.
        gamma_1, beta_1: gain and bias of the first LayerNorm, ``[D]`` each (``beta_1`` may be ``None``).
        w_q, w_k, w_v, w_o: attention projections ``[D, D]``.
        b_q, b_k, b_v, b_o: their biases ``[D]``, each may be ``None`` (no bias).
        n_heads: H, which must divide D.
        eps: the LayerNorm epsilon.
        mask: optional boolean ``[..., T, T]``; ``True`` attends (e.g. :func:`model.attention.causal_mask`).
            At a fully masked row the attention branch is ``b_O`` (0 without biases), never NaN.
        rope: optional callable on the per-head queries and keys ``[..., H, T, K]``
            (:func:`model.multihead.multi_head_attention`).
        dropout: optional callable :math:`\delta` applied to the branch output ``[..., T, D]``
            before it is added to ``x``; it must return the shape it is given.

    Returns:
        ``[..., T, D]``.

    Derivation: ``block.attention_sublayer``.

    References: Xiong et al., "On Layer Normalization in the Transformer Architecture", 2020;
    Radford et al., GPT-2, 2019, section 2.3; Srivastava et al., "Dropout", JMLR 2014
    (dropout on each sublayer output before the residual sum: Vaswani et al., 2017, section 5.4).
    """
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    _check_callable("dropout", dropout)

    def attend(u):
        z = layer_norm(u, gamma_1, beta_1, eps=eps)
        return multi_head_attention(z, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, n_heads=n_heads, mask=mask,
                                    rope=rope)

    return residual(x, _branch(attend, dropout))


@implements("block.ffn_sublayer")
def ffn_sublayer(x, gamma_2, beta_2, w_1, b_1, w_2, b_2, *, eps, activation: str = "relu",
                 dropout: Callable | None = None):
    r"""The pre-LN feed-forward sublayer, :math:`y = x + \delta\bigl(\operatorname{FFN}(\operatorname{LN}_2(x))\bigr)`.

    Applied to the output of :func:`attention_sublayer` it completes the block.  It is
    position-wise: output row ``t`` depends on input row ``t`` only (also with a
    ``dropout`` that acts entrywise).  :math:`\delta` is ``dropout``, the identity by default.

    Args:
        x: the residual stream ``[..., T, D]``.
        gamma_2, beta_2: gain and bias of the second LayerNorm, ``[D]`` each (``beta_2`` may be ``None``).
        w_1: ``[D, F]``; b_1: ``[F]``; w_2: ``[F, D]``; b_2: ``[D]``; the biases may be ``None``.
        eps: the LayerNorm epsilon.
        activation: a name in :data:`model.feedforward.FFN_BY_ACTIVATION`: ``"relu"`` (the registered
            statement), ``"gelu"`` (exact GELU, as GPT-2's paper and BERT; its FFN is the registered
            ``feedforward.gelu_ffn``) or ``"gelu_tanh"`` (the tanh approximation of GPT-2's code,
            ``feedforward.gelu_tanh_ffn``).
        dropout: optional callable :math:`\delta` applied to the branch output ``[..., T, D]``
            before it is added to ``x``; it must return the shape it is given.

    Returns:
        ``[..., T, D]``.

    Derivation: ``block.ffn_sublayer``.
    """
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    _check_callable("dropout", dropout)
    ffn = _check_activation(activation)

    def transform(u):
        return ffn(layer_norm(u, gamma_2, beta_2, eps=eps), w_1, b_1, w_2, b_2)

    return residual(x, _branch(transform, dropout))


def _split_dropout(dropout) -> tuple[Callable | None, Callable | None]:
    """``dropout`` for the two sublayers: one callable for both, or a pair (attention, FFN)."""
    if isinstance(dropout, tuple):
        if len(dropout) != 2:
            raise ValueError(f"dropout: expected a callable or a pair (attention, FFN), got a tuple of "
                             f"{len(dropout)}")
        pair = dropout
    else:
        pair = (dropout, dropout)
    for part in pair:
        _check_callable("dropout", part)
    return pair


@implements("block.pre_ln")
def transformer_block(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o,
                      gamma_2, beta_2, w_1, b_1, w_2, b_2, *, n_heads: int, eps, mask=None,
                      activation: str = "relu", rope: Callable | None = None, dropout=None):
    r"""The pre-LN transformer block.

    .. math:: h = x + \delta_1\bigl(\operatorname{MHA}(\operatorname{LN}_1(x), M)\bigr), \qquad
              y = h + \delta_2\bigl(\operatorname{FFN}(\operatorname{LN}_2(h))\bigr)

    It is :func:`ffn_sublayer` applied to :func:`attention_sublayer`; each half and
    the whole block are registered, verified equations (with :math:`\delta_1 = \delta_2`
    the identity and no ``rope``).  With a causal mask, output row ``t`` depends on input
    rows ``0..t`` only (checked by ``experiments/properties/block.py``).

    Args:
        x: ``[..., T, D]``.
        gamma_1, beta_1, gamma_2, beta_2: LayerNorm gains and biases ``[D]`` (the biases may be ``None``).
        w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o: attention weights ``[D, D]`` and biases ``[D]`` (or ``None``).
        w_1, b_1, w_2, b_2: FFN weights ``[D, F]``, ``[F]``, ``[F, D]``, ``[D]`` (biases may be ``None``).
        n_heads: H.
        eps: the LayerNorm epsilon (both LayerNorms).
        mask: optional boolean ``[..., T, T]``; a fully masked row gets ``b_O`` from attention, never NaN.
        activation: the FFN activation, a name in :data:`model.feedforward.FFN_BY_ACTIVATION`.
        rope: optional callable on the per-head queries and keys ``[..., H, T, K]``.
        dropout: ``None``, one callable used as both :math:`\delta_1` and :math:`\delta_2` (it is
            called twice, attention branch first: a stateful callable such as one drawing from an
            ``nnx.Rngs`` stream gives each branch its own mask, a pure function of a fixed key
            gives both the same mask), or a pair ``(delta_1, delta_2)``, either of which may be ``None``.

    Returns:
        ``[..., T, D]``.

    Derivation: ``block.pre_ln`` (its halves: ``block.attention_sublayer`` and ``block.ffn_sublayer``).

    References: Xiong et al., 2020, figure 1 (b); Radford et al., GPT-2, 2019.
    """
    drop_attn, drop_ffn = _split_dropout(dropout)
    h = attention_sublayer(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o,
                           n_heads=n_heads, eps=eps, mask=mask, rope=rope, dropout=drop_attn)
    return ffn_sublayer(h, gamma_2, beta_2, w_1, b_1, w_2, b_2, eps=eps, activation=activation, dropout=drop_ffn)


def transformer_block_cached(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o,
                             gamma_2, beta_2, w_1, b_1, w_2, b_2, cache_k, cache_v, start, *,
                             n_heads: int, eps, activation: str = "relu", rope: Callable | None = None):
    r"""The causal pre-LN block on new positions, with a key/value cache (decoding).

    .. math:: h = x + \operatorname{MHA}_{\mathrm{cache}}(\operatorname{LN}_1(x)), \qquad
              y = h + \operatorname{FFN}(\operatorname{LN}_2(h))

    where :math:`\operatorname{MHA}_{\mathrm{cache}}` is
    :func:`model.multihead.multi_head_attention_cached`: the keys and values of the T new
    positions ``start .. start+T-1`` are written into the cache at ``[start, start+T)`` and
    new position ``start+i`` attends to cache positions ``s <= start+i`` (positions
    ``>= start+T`` are masked; no row is fully masked).  Row ``i`` of ``y`` equals row
    ``start+i`` of :func:`transformer_block` on the whole sequence with the causal mask,
    when the cache holds the keys and values of positions ``0 .. start-1`` (as left by
    earlier calls: a prefill of the prompt, then one call per generated token).

    Args:
        x: the new positions ``[..., T, D]``.
        gamma_1, .., b_2: as :func:`transformer_block` (biases may be ``None``).
        cache_k, cache_v: this block's caches ``[..., H, S, K]`` (S cache positions,
            :meth:`TransformerBlock.init_cache`).
        start: the position of the first new row, an integer scalar that may be traced;
            ``0 <= start <= S - T`` (a concrete value outside raises; a traced one gives NaN).
        n_heads: H.
        eps: the LayerNorm epsilon.
        activation: the FFN activation.
        rope: optional callable on the new queries and keys ``[..., H, T, K]``, built by the caller
            for positions ``start .. start+T-1``.

    Returns:
        ``(y, cache_k, cache_v)``: ``y`` ``[..., T, D]`` and the updated caches ``[..., H, S, K]``.

    Derivation: ``block.pre_ln`` with the causal mask, row by row (tests/test_block.py compares
    prefill and step-by-step decoding with the whole block).
    """
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    ffn = _check_activation(activation)
    a, cache_k, cache_v = multi_head_attention_cached(
        layer_norm(x, gamma_1, beta_1, eps=eps), w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, cache_k, cache_v, start,
        n_heads=n_heads, rope=rope)
    h = x + a
    y = residual(h, lambda u: ffn(layer_norm(u, gamma_2, beta_2, eps=eps), w_1, b_1, w_2, b_2))
    return y, cache_k, cache_v


def _value(module, name: str):
    """The value of parameter ``name`` of ``module``, or ``None`` where the module holds no such parameter."""
    p = getattr(module, name, None)
    return None if p is None else p[...]


class TransformerBlock(nnx.Module):
    """The parameters of a pre-LN block: ``ln1``, ``attn``, ``ln2``, ``ffn`` submodules.

    Calling it runs :func:`transformer_block` with their parameters; :meth:`decode` runs
    :func:`transformer_block_cached`.  With ``use_bias=False`` no submodule holds a bias
    (no LayerNorm ``beta``, no attention ``b_q .. b_o``, no FFN ``b_1, b_2``): the block has
    :math:`4D^2 + 2DF + 2D` parameters instead of :math:`4D^2 + 2DF + F + 9D`.

    Args:
        d_model: D.
        n_heads: H, which must divide D.
        d_ff: F.
        eps: the LayerNorm epsilon.
        activation: the FFN activation, a name in :data:`model.feedforward.FFN_BY_ACTIVATION`.
        use_bias: whether the LayerNorms, attention and FFN hold biases.
        rngs: the random streams; ``rngs.params`` initialises the weights.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> TransformerBlock(8, 2, 32, rngs=nnx.Rngs(0))(jnp.ones((3, 8))).shape
    (3, 8)
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, eps: float = 1e-5, activation: str = "relu",
                 use_bias: bool = True, rngs: nnx.Rngs):
        check_positive_int("d_model", d_model)
        check_positive_int("n_heads", n_heads)
        check_positive_int("d_ff", d_ff)
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias: expected True or False, got {use_bias!r}")
        self.eps = float(eps)
        self.ln1 = LayerNorm(d_model, eps=eps, use_bias=use_bias, rngs=rngs)
        self.attn = MultiHeadAttention(d_model, n_heads, rngs=rngs, use_bias=use_bias)
        self.ln2 = LayerNorm(d_model, eps=eps, use_bias=use_bias, rngs=rngs)
        self.ffn = FeedForward(d_model, d_ff, activation=activation, use_bias=use_bias, rngs=rngs)

    def params(self) -> dict:
        """The parameter arguments of :func:`transformer_block` by name (absent biases are ``None``)."""
        a, f = self.attn, self.ffn
        return {"gamma_1": _value(self.ln1, "gamma"), "beta_1": _value(self.ln1, "beta"),
                **{name: _value(a, name) for name in ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")},
                "gamma_2": _value(self.ln2, "gamma"), "beta_2": _value(self.ln2, "beta"),
                **{name: _value(f, name) for name in ("w_1", "b_1", "w_2", "b_2")}}

    def __call__(self, x, mask=None, *, rope: Callable | None = None, dropout=None):
        """``[..., T, D] -> [..., T, D]``; ``mask``, ``rope`` and ``dropout`` as in :func:`transformer_block`."""
        return transformer_block(x, **self.params(), n_heads=self.attn.n_heads, eps=self.eps, mask=mask,
                                 activation=self.ffn.activation, rope=rope, dropout=dropout)

    def init_cache(self, batch_shape, length: int, *, dtype=None):
        """An empty cache ``(cache_k, cache_v)`` for this block, each ``[*batch_shape, H, S, K]`` with S = ``length``.

        Zeros; ``dtype`` defaults to that of the attention parameters.

        >>> from flax import nnx
        >>> block = TransformerBlock(8, 2, 32, rngs=nnx.Rngs(0))
        >>> cache_k, cache_v = block.init_cache(3, 16)
        >>> cache_k.shape
        (3, 2, 16, 4)
        """
        return self.attn.init_cache(batch_shape, length, dtype=dtype)

    def decode(self, x, cache_k, cache_v, start, *, rope: Callable | None = None):
        """:func:`transformer_block_cached` with this block's parameters.

        Args:
            x: the new positions ``[..., T, D]`` (positions ``start .. start+T-1``).
            cache_k, cache_v: ``[..., H, S, K]`` (:meth:`init_cache`).
            start: integer scalar, possibly traced, ``0 <= start <= S - T``.
            rope: optional callable on the new queries and keys ``[..., H, T, K]``.

        Returns:
            ``(y [..., T, D], cache_k, cache_v)``.
        """
        return transformer_block_cached(x, **self.params(), cache_k=cache_k, cache_v=cache_v, start=start,
                                        n_heads=self.attn.n_heads, eps=self.eps, activation=self.ffn.activation,
                                        rope=rope)
