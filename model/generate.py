r"""Text generation from a GPT: sampling the next token, and the decoding loop with a key/value cache.

Axis letters: B batch, T positions, S cache positions (the context), H heads, K head
width, V vocabulary.

Sampling.  The model gives logits :math:`z \in \mathbb R^V` for the next token.  They
become a distribution in three steps, in the usual order (temperature, then top-k,
then top-p):

.. math::
    p_i = \frac{e^{z_i/\tau}}{\sum_j e^{z_j/\tau}}, \qquad
    A = A_k \cap A_p, \qquad
    \tilde p_i = \frac{[i \in A]\, e^{z_i/\tau}}{\sum_{j \in A} e^{z_j/\tau}}

with :math:`A_k` the :math:`k` tokens of largest :math:`z` and :math:`A_p` the nucleus: in
order of decreasing probability under the distribution restricted to :math:`A_k`, the
shortest prefix whose probabilities sum to at least :math:`p` (it always holds the most
probable token).  :math:`\tau \to 0` concentrates :math:`p` on the argmax, so temperature 0
means greedy decoding.  The next token is drawn from :math:`\tilde p`
(:func:`next_token_probs`) by ``jax.random.categorical`` on the truncated logits
(:func:`filter_logits`, :math:`-\infty` outside :math:`A`).

Decoding.  :func:`generate` runs the prompt through the blocks once (the prefill,
:meth:`model.block.TransformerBlock.decode` at position 0), keeping every block's keys
and values ``[B, H, S, K]`` with ``S`` = the context, then feeds one token per step at
its position, attending to the cached keys and values: each step costs one position,
not the whole sequence.  The whole loop is one ``jax.jit`` (``nnx.split`` / ``nnx.merge``
at its boundary, ``lax.fori_loop`` inside), compiled once per model structure, prompt
shape, number of new tokens, cache choice, and whether top-k or top-p is on at all; the
seed, the temperature and the values of ``k`` and ``p`` are arguments, not compile-time
constants, so changing them reuses the compiled loop.
Without the cache (``use_cache=False``) each step recomputes the whole sequence, as
nanoGPT's ``generate`` does.

Beyond the context.  The model sees at most ``context`` tokens, at positions
``0 .. context-1``.  Token ``j`` is predicted from tokens ``max(0, j - context) .. j-1``;
with the cache that works up to ``j = context``.  After that the window slides: every
token moves to a new absolute position, so the cached keys and values (which depend on
the position through the position embedding, or through the rotation of rotary models)
no longer apply.  Once the window is full, each further step therefore recomputes the
last ``context`` tokens from scratch, exactly as the uncached path does (the same
function), so both paths give the same tokens.  A prompt longer than the context is cut
to its last ``context`` tokens, with a warning.

References: Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020
(nucleus sampling); Fan et al., "Hierarchical Neural Story Generation", ACL 2018 (top-k);
Karpathy, nanoGPT ``model.py`` ``generate`` (the uncached loop).
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from model.attention import softmax
from model.gpt import GPT, check_tokens, embed
from model.validate import check_rank

__all__ = [
    "check_sampling",
    "filter_logits",
    "forward_with_cache",
    "generate",
    "init_cache",
    "next_token_probs",
    "sample_next_token",
]


# --- sampling ----------------------------------------------------------------------------------


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_sampling(temperature=1.0, top_k=None, top_p=None, *, vocab_size: int):
    """Check sampling settings; return them as ``(float, int | None, float | None)``.

    Args:
        temperature: :math:`\\tau \\ge 0`, finite; 0 means greedy.
        top_k: ``None`` (no top-k) or an integer in ``[1, V]``.
        top_p: ``None`` (no nucleus) or a number in ``(0, 1]``.
        vocab_size: V.

    Raises:
        ValueError: a setting out of its range or of the wrong kind, named with the value that arrived.

    >>> check_sampling(0.8, 40, 0.95, vocab_size=65)
    (0.8, 40, 0.95)
    >>> check_sampling(1.0, 70, None, vocab_size=65)
    Traceback (most recent call last):
    ...
    ValueError: top_k: expected None or an integer in [1, V] = [1, 65], got 70
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral) or vocab_size < 1:
        raise ValueError(f"vocab_size: expected a positive integer, got {vocab_size!r}")
    t = temperature
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not (0 <= t < math.inf):
        raise ValueError(f"temperature: expected a finite number >= 0 (0 = greedy), got {t!r}")
    k = top_k
    if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= vocab_size):
        raise ValueError(f"top_k: expected None or an integer in [1, V] = [1, {vocab_size}], got {k!r}")
    p = top_p
    if p is not None and (isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1):
        raise ValueError(f"top_p: expected None or a number in (0, 1], got {p!r}")
    return float(t), (None if k is None else int(k)), (None if p is None else float(p))


def _concrete(name: str, value, stand_in):
    """A setting as a Python scalar for :func:`check_sampling`; ``stand_in`` when traced (unchecked)."""
    if value is None:
        return None
    if _is_traced(value):
        return stand_in
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        if np.ndim(value) != 0:
            raise ValueError(f"{name}: expected a scalar, got an array of shape {tuple(np.shape(value))}")
        return value.item()
    return value


def _check_settings(logits, temperature, top_k, top_p) -> None:
    """Validate the settings that are concrete (Python or NumPy scalars, concrete arrays); traced ones pass."""
    check_rank("logits", logits, min_rank=1, axes="[..., V]")
    check_sampling(_concrete("temperature", temperature, 1.0), _concrete("top_k", top_k, 1),
                   _concrete("top_p", top_p, 1.0), vocab_size=jnp.shape(logits)[-1])


def _scaled_and_kept(logits, temperature, top_k, top_p):
    r"""``(z / τ, keep)``: the tempered logits and the boolean set :math:`A` (see the module docstring).

    At :math:`\tau = 0` the scaled logits are ``z`` and :math:`A` is the argmax alone.
    """
    z = jnp.asarray(logits)
    v = z.shape[-1]
    tau = jnp.asarray(temperature, z.dtype)
    scaled = z / jnp.where(tau > 0, tau, jnp.ones_like(tau))
    index = jnp.broadcast_to(jnp.arange(v), z.shape)  # [..., V]: 0 .. V-1 along the last axis
    greedy = index == jnp.argmax(z, axis=-1, keepdims=True)  # ties: the first
    if top_k is None and top_p is None:
        keep = jnp.ones(z.shape, bool)
    else:
        # rank the tokens by decreasing logit (stable: ties in index order, as lax.top_k)
        order = jnp.argsort(scaled, axis=-1, descending=True, stable=True)  # [..., V]
        sorted_z = jnp.take_along_axis(scaled, order, axis=-1)
        rank = index  # position in the sorted order
        in_k = jnp.ones(z.shape, bool) if top_k is None else rank < top_k
        keep_sorted = in_k
        if top_p is not None:
            p_k = softmax(sorted_z, mask=in_k)  # the distribution restricted to the top k, renormalised
            before = jnp.cumsum(p_k, axis=-1) - p_k  # probability mass strictly ahead of each token
            p = jnp.asarray(top_p, z.dtype)
            # keep while the mass ahead is below p; p = 1 keeps everything (no rounding of the cumsum)
            keep_sorted = keep_sorted & ((before < p) | (p >= 1) | (rank == 0))
        keep = jnp.put_along_axis(jnp.zeros(z.shape, bool), order, keep_sorted, axis=-1, inplace=False)
    keep = jnp.where(tau > 0, keep, greedy)
    return scaled, keep


def filter_logits(logits, *, temperature=1.0, top_k=None, top_p=None):
    r"""Tempered, truncated logits: :math:`z_i/\tau` for :math:`i \in A`, :math:`-\infty` elsewhere.

    :math:`A` is the intersection of the top-k set and the nucleus (see the module
    docstring); ``softmax`` of the result is the renormalised distribution
    :math:`\tilde p_i = [i \in A]\, e^{z_i/\tau} / \sum_{j \in A} e^{z_j/\tau}`.  At
    :math:`\tau = 0` only the argmax keeps its (unscaled) logit.

    Args:
        logits: ``[..., V]``.
        temperature: :math:`\tau \ge 0` (may be traced).
        top_k: ``None`` or ``k`` in ``[1, V]`` (may be traced; ``None`` is static).
        top_p: ``None`` or ``p`` in ``(0, 1]`` (may be traced; ``None`` is static).

    Returns:
        ``[..., V]`` in the dtype of ``logits``.

    Raises:
        ValueError: concrete settings out of range (:func:`check_sampling`).

    >>> import jax.numpy as jnp
    >>> filter_logits(jnp.array([1.0, 3.0, 2.0]), top_k=2).tolist()
    [-inf, 3.0, 2.0]
    """
    _check_settings(logits, temperature, top_k, top_p)
    scaled, keep = _scaled_and_kept(logits, temperature, top_k, top_p)
    return jnp.where(keep, scaled, -jnp.inf)


def next_token_probs(logits, *, temperature=1.0, top_k=None, top_p=None):
    r"""The distribution the next token is drawn from, :math:`\tilde p` ``[..., V]``.

    .. math:: \tilde p_i = \frac{[i \in A]\, e^{z_i/\tau}}{\sum_{j \in A} e^{z_j/\tau}}

    computed with :func:`model.attention.softmax` (stable, masked entries exactly 0).
    At :math:`\tau = 0` it is the point mass on the argmax (the first one if tied).

    Args:
        logits, temperature, top_k, top_p: as in :func:`filter_logits`.

    Returns:
        probabilities ``[..., V]``, each row summing to 1.

    >>> import jax.numpy as jnp
    >>> [round(p, 3) for p in next_token_probs(jnp.log(jnp.array([0.5, 0.3, 0.2])), top_p=0.6).tolist()]
    [0.625, 0.375, 0.0]
    """
    _check_settings(logits, temperature, top_k, top_p)
    scaled, keep = _scaled_and_kept(logits, temperature, top_k, top_p)
    return softmax(scaled, mask=keep)


def sample_next_token(key, logits, *, temperature=1.0, top_k=None, top_p=None):
    r"""Draw the next token from :math:`\tilde p` (:func:`next_token_probs`); greedy at :math:`\tau = 0`.

    Sampling is ``jax.random.categorical`` on :func:`filter_logits` (the Gumbel-max
    trick: :math:`\arg\max_i (z_i/\tau + g_i)` over :math:`A`, :math:`g_i` standard Gumbel);
    at :math:`\tau = 0` it is :math:`\arg\max_i z_i` and ``key`` is not used.  Pure and
    jittable; every row of the leading axes is drawn independently.

    Args:
        key: a JAX PRNG key.
        logits: ``[..., V]``.
        temperature, top_k, top_p: as in :func:`filter_logits`.

    Returns:
        token ids ``[...]``, int32.

    >>> import jax, jax.numpy as jnp
    >>> sample_next_token(jax.random.key(0), jnp.array([[0.0, 5.0, 1.0]]), temperature=0.0).tolist()
    [1]
    """
    _check_settings(logits, temperature, top_k, top_p)
    scaled, keep = _scaled_and_kept(logits, temperature, top_k, top_p)
    drawn = jax.random.categorical(key, jnp.where(keep, scaled, -jnp.inf), axis=-1)
    greedy = jnp.argmax(logits, axis=-1)
    tau = jnp.asarray(temperature)
    return jnp.where(tau > 0, drawn, greedy).astype(jnp.int32)


# --- the cache and one forward pass with it ----------------------------------------------------


def init_cache(model: GPT, batch_size: int, *, dtype=None):
    """Empty key/value caches for every block of ``model``: a tuple of ``(cache_k, cache_v)``, each ``[B, H, S, K]``.

    ``S`` is the context: the cache holds every position the model can see
    (:meth:`model.block.TransformerBlock.init_cache`).

    Args:
        model: the :class:`model.gpt.GPT`.
        batch_size: B.
        dtype: the cache dtype; that of the attention parameters when ``None``.

    >>> from flax import nnx
    >>> from model.gpt import GPTConfig
    >>> cache = init_cache(GPT(GPTConfig.tiny(context=8, n_layers=1), rngs=nnx.Rngs(0)), 3)
    >>> len(cache), cache[0][0].shape
    (1, (3, 2, 8, 16))
    """
    return tuple(block.init_cache(batch_size, model.config.context, dtype=dtype) for block in model.blocks)


def _hidden_with_cache(model: GPT, tokens, cache, start):
    """``(h, cache)``: the residual stream after the last block ``[B, n, D]`` for tokens at ``start .. start+n-1``."""
    n = tokens.shape[-1]
    x = embed(tokens, model.wte[...], model.position_rows(start, n))
    rope = model.rope(start, n)
    new_cache = []
    for block, (k, v) in zip(model.blocks, cache, strict=True):
        x, k, v = block.decode(x, k, v, start, rope=rope)
        new_cache.append((k, v))
    return x, tuple(new_cache)


def _logits(model: GPT, h):
    """Logits ``[B, n, V]`` of the residual stream ``[B, n, D]`` after the last block."""
    return model.logits(h)


def forward_with_cache(model: GPT, tokens, cache, start):
    """Logits ``[B, n, V]`` of ``n`` new tokens ``[B, n]`` at positions ``start .. start+n-1``, and the updated cache.

    Every block writes the keys and values of the new positions into its cache and
    each new query attends to the cached positions up to its own
    (:meth:`model.block.TransformerBlock.decode`).  A prefill is ``start = 0`` with the
    whole prompt; a decoding step is ``n = 1``.  Together they give the logits of the
    full forward pass ``model(tokens)`` (up to rounding).  ``start`` may be traced; the
    caller keeps ``start + n <= context`` and checks the ids (:func:`model.gpt.check_tokens`).

    Args:
        model: the :class:`model.gpt.GPT`.
        tokens: ids ``[B, n]``.
        cache: from :func:`init_cache` or a previous call.
        start: the position of the first new token.

    Returns:
        ``(logits [B, n, V], cache)``.
    """
    check_rank("tokens", tokens, min_rank=2, axes="[B, n]")
    h, cache = _hidden_with_cache(model, tokens, cache, start)
    return _logits(model, h), cache


# --- generation --------------------------------------------------------------------------------


def _window_step(model: GPT, out, j, window: int):
    """Logits ``[B, V]`` for token ``j`` of ``out`` ``[B, N]``, recomputed from the tokens before it.

    The model reads the ``window`` tokens ``out[:, s : s + window]`` with
    ``s = max(0, j - window)``: the last ``window`` tokens before ``j`` once ``j >= window``,
    otherwise the start of ``out``, whose positions from ``j`` on are not yet generated
    but cannot be seen (the mask is causal), so the logits at row ``j - 1 - s`` are those
    of the sequence cut at ``j``.
    """
    s = jnp.maximum(j - window, 0)
    x = jax.lax.dynamic_slice_in_dim(out, s, window, axis=1)
    h = jax.lax.dynamic_index_in_dim(model.hidden(x), j - 1 - s, axis=1, keepdims=True)  # [B, 1, D]
    return model.logits(h)[:, 0]


@functools.partial(jax.jit, static_argnames=("graphdef", "n_new", "use_cache"))
def _generate_jit(graphdef, state, prompt, key, temperature, top_k, top_p, *, n_new: int, use_cache: bool):
    """``[B, T0 + n_new]``: the prompt ``[B, T0]`` (``T0 <= context``) followed by ``n_new >= 1`` tokens."""
    model = nnx.merge(graphdef, state)
    b, t0 = prompt.shape
    context = model.config.context
    total = t0 + n_new
    out = jnp.zeros((b, total), jnp.int32).at[:, :t0].set(prompt)

    def put(out, i, logits):
        """Draw token ``t0 + i`` (the i-th new one, with its own key) and write it into ``out``."""
        token = sample_next_token(jax.random.fold_in(key, i), logits, temperature=temperature,
                                  top_k=top_k, top_p=top_p)
        return jax.lax.dynamic_update_slice_in_dim(out, token[:, None], t0 + i, axis=1)

    window = min(context, total - 1)

    def recompute(out, j):
        return _window_step(model, out, j, window)

    if not use_cache:
        return jax.lax.fori_loop(0, n_new, lambda i, out: put(out, i, recompute(out, t0 + i)), out)

    # The prefill gives the logits of token t0.  Token j <= context is then predicted by feeding
    # token j - 1 at its own position (one cached step); token j > context from the window.
    h, cache = _hidden_with_cache(model, prompt, init_cache(model, b), 0)
    logits = _logits(model, h[:, -1:])[:, 0]

    def from_prefill(out, cache, logits, j):
        return logits, cache

    def decode(out, cache, logits, j):
        h, cache = _hidden_with_cache(model, jax.lax.dynamic_slice_in_dim(out, j - 1, 1, axis=1), cache, j - 1)
        return _logits(model, h)[:, 0], cache

    def slide(out, cache, logits, j):
        return recompute(out, j), cache

    # one sampler in the loop body, one branch of the model per phase (a branch never taken is left out)
    branches = [from_prefill, decode, slide][:3 if total - 1 > context else 2]

    def step(i, carry):
        out, cache, logits = carry
        j = t0 + i
        phase = jnp.where(i == 0, 0, jnp.where(j <= context, 1, 2))
        logits, cache = jax.lax.switch(phase, branches, out, cache, logits, j)
        return put(out, i, logits), cache, logits

    out, _, _ = jax.lax.fori_loop(0, n_new, step, (out, cache, logits))
    return out


def generate(model: GPT, prompt, max_new_tokens: int, *, temperature=1.0, top_k=None, top_p=None, seed: int = 0,
             use_cache: bool = True) -> np.ndarray:
    r"""Continue ``prompt`` by ``max_new_tokens`` tokens drawn from ``model`` (see the module docstring).

    Each new token is drawn by :func:`sample_next_token` from the logits of the tokens
    before it (at most the last ``context`` of them), with the key
    ``fold_in(key(seed), i)`` for the ``i``-th new token: the same seed gives the same
    tokens, with the cache or without.  ``temperature=0`` is greedy decoding.

    Args:
        model: the :class:`model.gpt.GPT`.
        prompt: token ids ``[B, T]`` or ``[T]`` (integers in ``[0, V)``, at least one).
            Longer than the context, the model conditions on its last ``context`` ids
            only (a warning says how many were dropped); the output still starts with
            the whole prompt.
        max_new_tokens: how many tokens to add, ``>= 0``.
        temperature: :math:`\tau \ge 0`.
        top_k: ``None`` or ``k`` in ``[1, V]``.
        top_p: ``None`` or ``p`` in ``(0, 1]``.
        seed: the seed of the random draws, an integer in ``[0, 2**32)``.
        use_cache: decode with the key/value cache (one position per step) or recompute the
            whole sequence every step.

    Returns:
        int32 ids ``[B, T + max_new_tokens]`` (``[T + max_new_tokens]`` for a 1-D prompt): the prompt,
        then the new tokens.

    Raises:
        TypeError: ``model`` is not a GPT, prompt ids that are not integers, or ``use_cache`` not a bool.
        ValueError: an empty or badly shaped prompt, an id outside ``[0, V)``, or bad settings.

    >>> from flax import nnx
    >>> from model.gpt import GPTConfig
    >>> model = GPT(GPTConfig.tiny(context=8, n_layers=1), rngs=nnx.Rngs(0))
    >>> out = generate(model, [1, 2, 3], 4, temperature=0.8, top_k=20, seed=1)
    >>> out.shape, out[:3].tolist()
    ((7,), [1, 2, 3])
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model: expected a model.gpt.GPT, got {type(model).__name__}")
    c = model.config
    temperature, top_k, top_p = check_sampling(temperature, top_k, top_p, vocab_size=c.vocab_size)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: expected an integer >= 0, got {max_new_tokens!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"seed: expected an integer in [0, 2**32), got {seed!r}")
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache: expected True or False, got {use_cache!r}")
    ids = np.asarray(prompt)
    if ids.ndim not in (1, 2) or ids.size == 0:
        raise ValueError(f"prompt: expected token ids [B, T] or [T] with at least one id, got shape {ids.shape}")
    one_sequence = ids.ndim == 1
    ids = ids[None] if one_sequence else ids
    check_tokens(ids, c.vocab_size, ids.shape[-1])
    ids = ids.astype(np.int32)
    t = ids.shape[-1]
    if t > c.context:
        warnings.warn(f"prompt: {t} tokens, longer than the context of {c.context}: the model sees only the "
                      f"last {c.context} ({t - c.context} dropped)", stacklevel=2)
    head, seen = ids[:, :-c.context], ids[:, -c.context:]
    if max_new_tokens == 0:
        out = ids
    else:
        # k and p are traced: one compiled loop serves every top-k / top-p value (k = V, p = 1 keep all)
        filtered = top_k is not None or top_p is not None
        k = jnp.int32(c.vocab_size if top_k is None else top_k) if filtered else None
        p = jnp.float32(1.0 if top_p is None else top_p) if filtered else None
        graphdef, state = nnx.split(model)
        new = _generate_jit(graphdef, state, jnp.asarray(seen), jax.random.key(int(seed)), jnp.float32(temperature),
                            k, p, n_new=int(max_new_tokens), use_cache=use_cache)
        out = np.concatenate([head, np.asarray(new)], axis=1)
    return out[0] if one_sequence else out
