r"""A decoder-only GPT (week 12): token and position embeddings, L pre-LN blocks, a final LayerNorm, logits.

.. math::
    x^{(0)} = \operatorname{onehot}(\mathrm{tokens})\, W_E + W_P, \qquad
    x^{(l)} = \operatorname{Block}_l\bigl(x^{(l-1)}, M_{\mathrm{causal}}\bigr), \qquad
    z = \operatorname{LN}_f\bigl(x^{(L)}\bigr)\, W_U

Axis letters: T positions (at most the context length), D model width, H heads,
F feed-forward hidden width, V vocabulary, L layers; any leading axes (batch ``B``)
are carried through as ``...``.  With a tied head :math:`W_U = W_E^\top`.

The equations at both ends are registered (``gpt.embedding``, ``gpt.logits``), the
blocks are ``model.block.transformer_block`` (``block.attention_sublayer`` and
``block.ffn_sublayer``), and the parameter count is ``gpt.param_count``.

Token ids.  A JAX gather clamps an index outside ``[0, V)`` to the nearest valid
row, which would silently embed the wrong token.  :func:`check_tokens` therefore
rejects such ids (and sequences longer than the context) when the tokens are
concrete; :class:`GPT` calls it on every call.  Under ``jax.jit`` the ids are
traced and cannot be checked: the caller must check them before the jit boundary
(``check_tokens(batch, V, T)``).  As a second line of defence, :func:`embed` gives a
NaN embedding (not a clamped row) for an out-of-range id, so every logit of that
sequence turns NaN (a masked attention weight of 0 times a NaN value is still NaN),
and the loss with it, instead of looking plausible; other sequences are unaffected.

Presets (:meth:`GPTConfig.preset`): ``tiny``, ``shakespeare-char`` (nanoGPT's CPU
recipe), and GPT-2's four shapes ``gpt2-small``, ``gpt2-medium``, ``gpt2-large``,
``gpt2-xl``.  They have GPT-2's shapes, exactly the published parameter counts
(124,439,808 for ``gpt2-small``), and GPT-2's tanh-approximate GELU
(``feedforward.gelu_tanh``).

Positions: a learned table (GPT-2), the sinusoidal encoding (``positional.sinusoidal``)
added to the embeddings, or rotary embeddings that rotate each head's queries and keys
(``positional.rotary``), so that a score depends on positions only through their
difference (``positional.rotary_relative``).  Dropout, when configured, is applied in
training steps only (a ``dropout_key``), on the embeddings and each residual branch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from model.attention import causal_mask
from model.block import TransformerBlock
from model.equation import implements
from model.feedforward import FFN_BY_ACTIVATION
from model.normalization import LayerNorm, layer_norm
from model.positional import apply_rotary, rotary_tables, sinusoidal_encoding
from model.validate import check_positive_int, check_rank, check_shape, config_from_dict

__all__ = [
    "GPT",
    "POSITIONAL",
    "PRESETS",
    "GPTConfig",
    "abstract_gpt",
    "check_tokens",
    "count_parameters",
    "embed",
    "lm_logits",
    "param_count",
]

#: the positional encodings a GPT can use
POSITIONAL = ("learned", "sinusoidal", "rotary", "none")


def _check_positive_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class GPTConfig:
    """The shape and settings of a :class:`GPT`.

    Build one from a preset and change fields with :func:`dataclasses.replace` (the
    result is validated again), e.g. the character vocabulary of a corpus::

        dataclasses.replace(GPTConfig.preset("shakespeare-char"), vocab_size=len(tokenizer))

    or pass the overrides to the preset: ``GPTConfig.preset("shakespeare-char", vocab_size=80)``.
    """

    vocab_size: int
    """V: the number of token ids; valid ids are ``0 .. V-1``."""
    context: int
    """T: the maximum sequence length (rows of the learned position table)."""
    d_model: int
    """D: the width of the residual stream."""
    n_heads: int
    """H: attention heads per block; must divide ``d_model``."""
    d_ff: int
    """F: the hidden width of the feed-forward network (4D in GPT-2)."""
    n_layers: int
    """L: the number of transformer blocks."""
    positional: str = "learned"
    """``"learned"`` (a trained ``[T, D]`` table, as GPT-2), ``"sinusoidal"`` (fixed, added), ``"rotary"`` (RoPE) or ``"none"``.

    With ``"none"`` the only source of order is the causal mask (an ablation baseline)."""
    pe_base: float = 10000.0
    """The base of the geometric frequencies of ``"sinusoidal"`` and ``"rotary"`` (10000 in both papers)."""
    tie_embeddings: bool = True
    """Whether the output head reuses the token embedding (logits = LN(h) W_Eᵀ) instead of its own [D, V] weight."""
    bias: bool = True
    """Biases in the attention and FFN projections and the LayerNorms (GPT-2: True; without them N drops by L(F + 7D) + D)."""
    dropout: float = 0.0
    """Dropout rate in ``[0, 1)`` on the embeddings and on each residual branch, in training steps only."""
    activation: str = "relu"
    """The FFN activation: ``"relu"`` (the original transformer), ``"gelu"`` (exact erf) or ``"gelu_tanh"`` (GPT-2's code)."""
    eps: float = 1e-5
    """The LayerNorm epsilon (every LayerNorm of the model)."""
    init_std: float = 0.02
    """Standard deviation of the normal initial weights (residual output projections: init_std/√(2L))."""

    def __post_init__(self):
        for name in ("vocab_size", "context", "d_model", "n_heads", "d_ff", "n_layers"):
            check_positive_int(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model = {self.d_model} must be divisible by n_heads = {self.n_heads}")
        if self.positional not in POSITIONAL:
            raise ValueError(f"positional: expected one of {POSITIONAL}, got {self.positional!r}")
        if self.positional == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"d_model: the sinusoidal encoding needs an even width (sin/cos pairs), "
                             f"got {self.d_model}")
        if self.positional == "rotary" and (self.d_model // self.n_heads) % 2:
            raise ValueError(f"rotary position embeddings rotate pairs of a head's coordinates: expected an even "
                             f"head width d_model / n_heads, got {self.d_model} / {self.n_heads} = "
                             f"{self.d_model // self.n_heads}")
        if self.activation not in FFN_BY_ACTIVATION:
            raise ValueError(f"activation: expected one of {tuple(FFN_BY_ACTIVATION)}, got {self.activation!r}")
        object.__setattr__(self, "pe_base", _check_positive_number("pe_base", self.pe_base))
        object.__setattr__(self, "eps", _check_positive_number("eps", self.eps))
        object.__setattr__(self, "init_std", _check_positive_number("init_std", self.init_std))
        _check_bool("tie_embeddings", self.tie_embeddings)
        _check_bool("bias", self.bias)
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not (0.0 <= d < 1.0):
            raise ValueError(f"dropout: expected a rate in [0, 1), got {d!r}")
        object.__setattr__(self, "dropout", float(d))

    # --- presets ---------------------------------------------------------------------------------

    @classmethod
    def tiny(cls, **overrides) -> GPTConfig:
        """A model that trains in seconds on a CPU: V=65, T=32, D=32, H=2, F=128, L=2."""
        shape = {"vocab_size": 65, "context": 32, "d_model": 32, "n_heads": 2, "d_ff": 128, "n_layers": 2}
        return cls(**{**shape, **overrides})

    @classmethod
    def shakespeare_char(cls, **overrides) -> GPTConfig:
        """nanoGPT's CPU recipe for character-level Shakespeare: L=4, H=4, D=128, T=64, F=4D.

        ``vocab_size`` is 65 (the characters of Tiny Shakespeare); set it from the
        tokenizer of the corpus actually used (``vocab_size=...`` or :func:`dataclasses.replace`).
        """
        shape = {"vocab_size": 65, "context": 64, "d_model": 128, "n_heads": 4, "d_ff": 512, "n_layers": 4}
        return cls(**{**shape, **overrides})

    @classmethod
    def _gpt2(cls, d_model: int, n_layers: int, n_heads: int, overrides: dict) -> GPTConfig:
        shape = {"vocab_size": 50257, "context": 1024, "d_model": d_model, "n_heads": n_heads, "d_ff": 4 * d_model,
                 "n_layers": n_layers, "positional": "learned", "tie_embeddings": True,
                 "activation": "gelu_tanh"}
        return cls(**{**shape, **overrides})

    @classmethod
    def gpt2_small(cls, **overrides) -> GPTConfig:
        """GPT-2 (124M): V=50257, T=1024, D=768, L=12, H=12, F=4D, learned positions, tied head, GELU."""
        return cls._gpt2(768, 12, 12, overrides)

    @classmethod
    def gpt2_medium(cls, **overrides) -> GPTConfig:
        """GPT-2 medium (355M): D=1024, L=24, H=16, otherwise as :meth:`gpt2_small`."""
        return cls._gpt2(1024, 24, 16, overrides)

    @classmethod
    def gpt2_large(cls, **overrides) -> GPTConfig:
        """GPT-2 large (774M): D=1280, L=36, H=20, otherwise as :meth:`gpt2_small`."""
        return cls._gpt2(1280, 36, 20, overrides)

    @classmethod
    def gpt2_xl(cls, **overrides) -> GPTConfig:
        """GPT-2 XL (1.5B): D=1600, L=48, H=25, otherwise as :meth:`gpt2_small`."""
        return cls._gpt2(1600, 48, 25, overrides)

    @classmethod
    def preset(cls, name: str, **overrides) -> GPTConfig:
        """The preset called ``name`` (see :data:`PRESETS`), with fields replaced by ``overrides``.

        >>> GPTConfig.preset("gpt2-small").d_model
        768
        >>> GPTConfig.preset("shakespeare-char", vocab_size=80).vocab_size
        80
        """
        if name not in PRESETS:
            raise ValueError(f"unknown GPT preset {name!r}; expected one of {', '.join(PRESETS)}")
        return getattr(cls, PRESETS[name])(**overrides)

    # --- saving with a checkpoint ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field by name: plain JSON-compatible values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """The config saved by :meth:`to_dict`; every field must be present and no other key.

        Raises:
            TypeError: ``data`` is not a mapping.
            ValueError: missing or unknown keys (named), or invalid values.
        """
        return config_from_dict(cls, data)

    def to_json(self) -> str:
        """The config as a JSON object (:meth:`to_dict`), keys in field order."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> GPTConfig:
        """The config written by :meth:`to_json`.

        >>> c = GPTConfig.tiny()
        >>> GPTConfig.from_json(c.to_json()) == c
        True
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"GPTConfig.from_json: not valid JSON: {e}") from None
        return cls.from_dict(data)


#: preset name -> the :class:`GPTConfig` classmethod that builds it
PRESETS: dict[str, str] = {
    "tiny": "tiny",
    "shakespeare-char": "shakespeare_char",
    "gpt2-small": "gpt2_small",
    "gpt2-medium": "gpt2_medium",
    "gpt2-large": "gpt2_large",
    "gpt2-xl": "gpt2_xl",
}


# --- the pure functions ------------------------------------------------------------------------


def check_tokens(tokens, vocab_size: int, context: int) -> None:
    """Check token ids ``[..., T]`` before they reach a gather.

    Always (shapes are static, also under ``jax.jit``): integer dtype, rank >= 1,
    ``1 <= T <= context``.  When ``tokens`` is concrete (not a tracer): every id in
    ``[0, V)``.  Under ``jax.jit`` the values cannot be seen, so call this on the batch
    before the jit boundary: a JAX gather clamps an out-of-range index silently.

    Args:
        tokens: integer ids ``[..., T]``.
        vocab_size: V.
        context: the maximum sequence length.

    Raises:
        TypeError: ids that are not integers.
        ValueError: a scalar, an empty or too long sequence, or an id outside ``[0, V)``
            (the first one in row-major order, with its position).

    >>> import numpy as np
    >>> check_tokens(np.array([1, 2, 70]), 65, 32)
    Traceback (most recent call last):
    ...
    ValueError: tokens: expected token ids in [0, V) = [0, 65), got 70 at position (2,)
    """
    check_positive_int("vocab_size", vocab_size)
    check_positive_int("context", context)
    dtype = jnp.result_type(tokens)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"tokens: expected integer token ids, got dtype {dtype}")
    check_rank("tokens", tokens, min_rank=1, axes="[..., T]")
    shape = tuple(jnp.shape(tokens))
    t = shape[-1]
    if t > context:
        raise ValueError(f"tokens: the sequence has {t} positions, longer than the context of {context} "
                         f"(shape {shape})")
    if t == 0:
        raise ValueError(f"tokens: expected at least one position, got shape {shape}")
    if isinstance(tokens, jax.core.Tracer):
        return
    ids = np.asarray(tokens)
    bad = (ids < 0) | (ids >= vocab_size)
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), ids.shape)
        raise ValueError(f"tokens: expected token ids in [0, V) = [0, {vocab_size}), got {int(ids[where])} "
                         f"at position {tuple(int(i) for i in where)}")


@implements("gpt.embedding")
def embed(tokens, wte, wpe):
    r"""The input of the first block: token embedding plus position embedding.

    .. math:: x = \operatorname{onehot}(\mathrm{tokens})\, W_E + W_P, \qquad
              x_t = W_E[\mathrm{tokens}_t] + W_P[t]

    computed as a gather of rows of :math:`W_E` (the one-hot product, without the
    ``[T, V]`` matrix).  The gradient with respect to :math:`W_E` adds the cotangent of
    every position holding token ``v`` into row ``v``: :math:`\operatorname{onehot}^\top dX`.

    Args:
        tokens: integer ids ``[..., T]`` in ``[0, V)``.
        wte: the token embedding :math:`W_E` ``[V, D]``.
        wpe: position vectors ``[T', D]`` with ``T' >= T`` (the learned table or a
            sinusoidal encoding); positions ``0 .. T-1`` are used.

    Returns:
        ``[..., T, D]`` in the dtype of ``wte``.  An id outside ``[0, V)`` gives a NaN
        row (not a clamped one); concrete ids are checked first and raise instead.

    Raises:
        ValueError: mismatched shapes, too few position rows, or (concrete) bad ids.

    Derivation: ``gpt.embedding``.

    References: Radford et al., "Improving Language Understanding by Generative
    Pre-Training", 2018, equation (2); Vaswani et al., 2017, sections 3.4-3.5.

    >>> import jax.numpy as jnp
    >>> embed(jnp.array([1, 0]), jnp.array([[0.0, 1.0], [2.0, 3.0]]), jnp.zeros((4, 2))).tolist()
    [[2.0, 3.0], [0.0, 1.0]]
    """
    wte_shape = tuple(jnp.shape(wte))
    if len(wte_shape) != 2:
        raise ValueError(f"wte: expected shape [V, D] (rank 2), got {wte_shape}")
    v, d = wte_shape
    check_rank("tokens", tokens, min_rank=1, axes="[..., T]")
    t = jnp.shape(tokens)[-1]
    wpe_shape = tuple(jnp.shape(wpe))
    if len(wpe_shape) != 2 or wpe_shape[1] != d or wpe_shape[0] < t:
        raise ValueError(f"wpe: expected shape [T', D] with T' >= T = {t} and D = {d} (the width of wte), "
                         f"got {wpe_shape}")
    check_tokens(tokens, v, wpe_shape[0])
    x = jnp.asarray(wte).at[jnp.asarray(tokens)].get(mode="fill", fill_value=jnp.nan,
                                                      wrap_negative_indices=False)  # [..., T, D]
    return x + jnp.broadcast_to(wpe[:t].astype(x.dtype), x.shape)


@implements("gpt.logits")
def lm_logits(h, ln_f_gamma, ln_f_beta, w_head, *, eps):
    r"""The output head: the final LayerNorm, then a linear map to vocabulary logits.

    .. math:: z = \operatorname{LN}_f(h)\, W_U, \qquad z_{tv} = \operatorname{LN}_f(h)_t \cdot W_U[:, v]

    With a tied head :math:`W_U = W_E^\top` (pass ``wte.T``): the logit of token ``v`` is
    the dot product of the final state with that token's embedding.  GPT-2's head has
    no bias.

    Args:
        h: the residual stream after the last block ``[..., T, D]``.
        ln_f_gamma, ln_f_beta: gain and bias of the final LayerNorm ``[D]`` (``ln_f_beta`` None: no bias).
        w_head: :math:`W_U` ``[D, V]``.
        eps: the LayerNorm epsilon.

    Returns:
        logits ``[..., T, V]``.

    Derivation: ``gpt.logits``.

    References: Radford et al., GPT-2, 2019, section 2.3 (the final LayerNorm); Press and
    Wolf, "Using the Output Embedding to Improve Language Models", EACL 2017 (tying).
    """
    check_rank("h", h, min_rank=2, axes="[..., T, D]")
    d = jnp.shape(h)[-1]
    w_shape = tuple(jnp.shape(w_head))
    if len(w_shape) != 2 or w_shape[0] != d:
        raise ValueError(f"w_head: expected shape [D, V] = [{d}, V] (D = {d} is the width of h), got {w_shape}")
    check_shape("ln_f_gamma", ln_f_gamma, (d,), axes="[D]")
    if ln_f_beta is not None:
        check_shape("ln_f_beta", ln_f_beta, (d,), axes="[D]")
    return jnp.einsum("...td,dv->...tv", layer_norm(h, ln_f_gamma, ln_f_beta, eps=eps), w_head)


# --- the module --------------------------------------------------------------------------------


def _normal(rngs: nnx.Rngs, shape: tuple[int, ...], std: float) -> nnx.Param:
    """A float32 parameter drawn from N(0, std²)."""
    return nnx.Param(nnx.initializers.normal(std)(rngs.params(), shape, jnp.float32))


@functools.partial(nnx.jit, static_argnames=("d_model", "n_heads", "d_ff", "eps", "activation", "use_bias", "std",
                                             "residual_std"))
def _init_block(key, *, d_model: int, n_heads: int, d_ff: int, eps: float, activation: str, use_bias: bool,
                std: float, residual_std: float) -> TransformerBlock:
    """One block drawn from ``key``: weights N(0, std²), residual output projections N(0, residual_std²).

    Built under ``nnx.jit``: one compiled initialiser serves every block of a shape, and
    when the model is built under a trace (``nnx.eval_shape``, ``nnx.jit``) each block is
    traced in a frame of its own.  In one flat trace every draw of the random stream
    makes JAX inspect the whole trace so far (it describes the traced counter while Flax
    compares shardings): time quadratic in the depth, about 14 s to build GPT-2 XL
    abstractly instead of half a second.
    """
    rngs = nnx.Rngs(params=key)
    block = TransformerBlock(d_model, n_heads, d_ff, eps=eps, activation=activation, use_bias=use_bias, rngs=rngs)
    # GPT-2's initialisation replaces the modules' own (Glorot / LeCun) draws
    for module, name, sigma in ((block.attn, "w_q", std), (block.attn, "w_k", std), (block.attn, "w_v", std),
                                (block.attn, "w_o", residual_std), (block.ffn, "w_1", std),
                                (block.ffn, "w_2", residual_std)):
        setattr(module, name, _normal(rngs, getattr(module, name)[...].shape, sigma))
    return block


class GPT(nnx.Module):
    r"""A decoder-only transformer language model: tokens ``[..., T]`` to logits ``[..., T, V]``.

    Holds ``wte [V, D]``, ``wpe [T, D]`` (learned positions only; the sinusoidal table
    is computed, not a parameter), ``blocks`` (an ``nnx.List`` of L
    :class:`model.block.TransformerBlock`), ``ln_f`` (:class:`model.normalization.LayerNorm`)
    and, with an untied head, ``w_head [D, V]``.  Calling it runs :func:`embed`, the
    blocks with the causal mask, and :func:`lm_logits`.

    Initialisation as GPT-2: every weight matrix and embedding drawn from
    :math:`\mathcal N(0, \sigma^2)` with :math:`\sigma` = ``init_std``, except the
    projections that write into the residual stream (``w_o`` of attention and ``w_2``
    of the FFN) with :math:`\sigma/\sqrt{2L}`, so the residual stream's variance does
    not grow with depth; biases zero, LayerNorm gains one.

    Args:
        config: the :class:`GPTConfig`.
        rngs: the random streams; ``rngs.params`` initialises the weights (one draw per block).

    The parameters are float32.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = GPT(GPTConfig.tiny(), rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((2, 5), dtype=jnp.int32)).shape
    (2, 5, 65)
    """

    def __init__(self, config: GPTConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
        c = config
        self.config = c
        self.wte = _normal(rngs, (c.vocab_size, c.d_model), c.init_std)
        if c.positional == "learned":
            self.wpe = _normal(rngs, (c.context, c.d_model), c.init_std)
        shape = {"d_model": c.d_model, "n_heads": c.n_heads, "d_ff": c.d_ff, "eps": c.eps,
                 "activation": c.activation, "use_bias": c.bias, "std": c.init_std,
                 "residual_std": c.init_std / math.sqrt(2 * c.n_layers)}
        blocks = [_init_block(rngs.params(), **shape) for _ in range(c.n_layers)]
        self.blocks = nnx.List(blocks)
        self.ln_f = LayerNorm(c.d_model, eps=c.eps, use_bias=c.bias, rngs=rngs)
        if not c.tie_embeddings:
            self.w_head = _normal(rngs, (c.d_model, c.vocab_size), c.init_std)

    def positions(self, n: int):
        """The position vectors added to the embeddings of positions ``0 .. n-1``, ``[n, D]``.

        Rows of ``wpe``, the sinusoidal table, or zeros for rotary models (whose positions
        enter inside attention, :meth:`rope`).
        """
        return self.position_rows(0, n)

    def position_rows(self, start, n: int):
        """Position vectors of positions ``start .. start+n-1``, ``[n, D]``; ``start`` may be traced.

        For decoding with a cache: ``embed(tokens, wte, model.position_rows(start, n))`` embeds
        ``n`` new tokens at their absolute positions.  For rotary models the result is zeros
        (positions enter through :meth:`rope`).  The caller keeps ``start + n <= context``.
        """
        c = self.config
        dtype = self.wte[...].dtype
        if c.positional == "learned":
            return jax.lax.dynamic_slice_in_dim(self.wpe[...], start, n, axis=0)
        if c.positional in ("rotary", "none"):
            return jnp.zeros((n, c.d_model), dtype)
        p = jnp.asarray(start, jnp.int32) + jnp.arange(n, dtype=jnp.int32)
        return sinusoidal_encoding(p, d_model=c.d_model, base=c.pe_base, dtype=dtype)

    def rope(self, start, n: int):
        """The rotary hook for positions ``start .. start+n-1``: ``None`` unless ``positional="rotary"``.

        A callable for the ``rope`` argument of the blocks, which rotates per-head queries and
        keys ``[..., H, n, K]``; ``start`` may be traced.  The tables
        (:func:`model.positional.rotary_tables`, base ``pe_base``) are built once per call.
        """
        c = self.config
        if c.positional != "rotary":
            return None
        p = jnp.asarray(start, jnp.int32) + jnp.arange(n, dtype=jnp.int32)
        cos, sin = rotary_tables(p, head_dim=c.d_model // c.n_heads, base=c.pe_base, dtype=self.wte[...].dtype)
        return functools.partial(apply_rotary, cos=cos, sin=sin)

    def head(self):
        """The output weight :math:`W_U` ``[D, V]``: ``wte.T`` when tied, else ``w_head``."""
        return self.wte[...].T if self.config.tie_embeddings else self.w_head[...]

    def __call__(self, tokens, *, dropout_key=None):
        """Logits ``[..., T, V]`` for token ids ``[..., T]`` (``T <= context``), causally masked.

        ``self.logits(self.hidden(tokens, dropout_key=dropout_key))``.
        """
        return self.logits(self.hidden(tokens, dropout_key=dropout_key))

    def hidden(self, tokens, *, dropout_key=None):
        """The residual stream after the last block ``[..., T, D]`` (before LN_f and the head).

        Concrete ids are checked with :func:`check_tokens`; under ``jax.jit`` check them
        before the jit boundary (an out-of-range id then makes its sequence's logits NaN, see
        :func:`embed`).

        ``dropout_key``: a PRNG key for a training step.  With ``config.dropout = p > 0``
        it drops entries of the embedding and of every residual branch (attention and FFN
        output, before the addition) with probability ``p`` and scales the kept ones by
        ``1/(1-p)`` (inverted dropout: the expectation is unchanged).  Without a key, or
        with ``p = 0``, the model is deterministic (evaluation and sampling).  Unlike
        nanoGPT, the attention weights themselves are not dropped.
        """
        c = self.config
        check_tokens(tokens, c.vocab_size, c.context)
        t = jnp.shape(tokens)[-1]
        x = embed(tokens, self.wte[...], self.positions(t))
        drop = dropout_key is not None and c.dropout > 0.0
        if drop:
            x = _dropout(x, jax.random.fold_in(dropout_key, c.n_layers), c.dropout)
        mask = causal_mask(t, t)
        rope = self.rope(0, t)
        for i, block in enumerate(self.blocks):
            branches = None
            if drop:
                k_attn, k_ffn = jax.random.split(jax.random.fold_in(dropout_key, i))
                branches = (functools.partial(_dropout, key=k_attn, rate=c.dropout),
                            functools.partial(_dropout, key=k_ffn, rate=c.dropout))
            x = block(x, mask, rope=rope, dropout=branches)
        return x

    def logits(self, h):
        """:func:`lm_logits` of the final residual stream ``h [..., T, D]`` with this model's LN_f and head."""
        return lm_logits(h, self.ln_f.gamma[...], self.ln_f.params()["beta"], self.head(), eps=self.ln_f.eps)


def _dropout(u, key, rate: float):
    """Inverted dropout: each entry kept with probability ``1 - rate`` and scaled by ``1/(1 - rate)``."""
    keep = jax.random.bernoulli(key, 1.0 - rate, jnp.shape(u))
    return jnp.where(keep, u / (1.0 - rate), jnp.zeros((), u.dtype))


def abstract_gpt(config: GPTConfig, *, seed: int = 0) -> GPT:
    """A :class:`GPT` built with ``nnx.eval_shape``: every parameter a ``jax.ShapeDtypeStruct``, nothing allocated.

    For counting parameters, or as the target structure when restoring a checkpoint;
    it takes well under a second even for GPT-2 XL.

    >>> abstract_gpt(GPTConfig.preset("gpt2-xl")).wte.shape
    (50257, 1600)
    """
    return nnx.eval_shape(lambda: GPT(config, rngs=nnx.Rngs(seed)))


def count_parameters(module: nnx.Module) -> int:
    """The number of scalar parameters (``nnx.Param`` entries) of ``module``; works on abstract modules too."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)))


@implements("gpt.param_count")
def param_count(vocab_size: int, context: int, d_model: int, n_heads: int, d_ff: int, n_layers: int, *,
                tie_embeddings=True, learned_positions=True, biases=True) -> int:
    r"""The number of parameters of :class:`GPT`, counted on the module built abstractly.

    .. math:: N = VD + [\text{learned}]\,TD + L\,(4D^2 + 2DF + 2D + [\text{biases}](F + 7D))
              + D + [\text{biases}]\,D + [\text{untied}]\,DV

    The module is built with ``nnx.eval_shape`` (:func:`abstract_gpt`: shapes only,
    nothing allocated, even for GPT-2 XL), so the count cannot drift from the code.

    Args:
        vocab_size: V.
        context: T, the context length.
        d_model: D.
        n_heads: H (the count does not depend on it).
        d_ff: F.
        n_layers: L.
        tie_embeddings: 1/True for a head tied to the token embedding, 0/False for its own ``[D, V]``.
        learned_positions: 1/True for a learned ``[T, D]`` position table, 0/False for sinusoidal.
        biases: 1/True for biases in the projections and LayerNorms (GPT-2), 0/False for none.

    Returns:
        N, a Python int.

    Derivation: ``gpt.param_count``.

    >>> param_count(50257, 1024, 768, 12, 3072, 12)  # GPT-2 small
    124439808
    """
    flags = {}
    for name, value in (("tie_embeddings", tie_embeddings), ("learned_positions", learned_positions),
                        ("biases", biases)):
        if not isinstance(value, (bool, int, float)) or value not in (0, 1):
            raise ValueError(f"{name}: expected True/False (or 1/0), got {value!r}")
        flags[name] = bool(value)
    config = GPTConfig(vocab_size=vocab_size, context=context, d_model=d_model, n_heads=n_heads, d_ff=d_ff,
                       n_layers=n_layers, tie_embeddings=flags["tie_embeddings"],
                       positional="learned" if flags["learned_positions"] else "sinusoidal", bias=flags["biases"])
    return count_parameters(abstract_gpt(config))
