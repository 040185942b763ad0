r"""Week 11: what residual connections do to the gradient through depth, pre-LN and post-LN.

Four stacks of :math:`L` layers, alike in every parameter and differing only in where the
LayerNorms sit and whether the sublayers are skipped around (:data:`VARIANTS`):

* ``pre_ln``: :math:`h = x + \operatorname{MHA}(\operatorname{LN}_1(x))`,
  :math:`y = h + \operatorname{FFN}(\operatorname{LN}_2(h))`, exactly
  :func:`model.block.transformer_block` with the causal mask (GPT-2's block);
* ``post_ln``: :math:`u = \operatorname{LN}_1(x + \operatorname{MHA}(x))`,
  :math:`y = \operatorname{LN}_2(u + \operatorname{FFN}(u))`, the layer of the original
  transformer and BERT.  :func:`model.bert.post_ln_layer` takes a padding mask and attends
  both ways, so for a causal language model the same layer is composed here from
  :func:`model.normalization.layer_norm`, :func:`model.multihead.multi_head_attention` with
  :func:`model.attention.causal_mask`, the FFN and :func:`model.residual.residual`
  (:func:`post_ln_causal`); without a mask it equals :func:`model.bert.post_ln_layer`
  (tests/test_weekly_residual.py checks this);
* ``pre_ln_no_residual``: the pre-LN sublayers without their skips,
  :math:`y = \operatorname{FFN}(\operatorname{LN}_2(\operatorname{MHA}(\operatorname{LN}_1(x))))`;
* ``post_ln_no_residual``: the post-LN sublayers without their skips,
  :math:`y = \operatorname{LN}_2(\operatorname{FFN}(\operatorname{LN}_1(\operatorname{MHA}(x))))`.

Every layer's parameters are drawn by :class:`model.block.TransformerBlock` (Glorot-uniform
attention, LeCun-normal FFN, LayerNorm gains 1 and shifts 0), the same draws for every
variant.  The model around the stack is a GPT's: token and learned position embeddings
(:func:`model.gpt.embed`, :math:`\mathcal N(0, 0.02^2)`), the final LayerNorm and the tied head
(:func:`model.gpt.lm_logits`), and the next-character cross-entropy
(:func:`model.loss.cross_entropy`) on the built-in Shakespeare corpus.  The layers run under
``jax.lax.scan`` over their stacked parameters with a ``jax.lax.switch`` that picks the variant's
layer (or the identity past the depth), so one compiled training step serves every variant and depth.

Measured for each variant and depth (:data:`DEPTHS`), on one fixed batch, at initialisation and
after a short training (AdamW with warmup, cosine decay and clipping,
:func:`experiments.train.make_optimizer`; the same batches for every stack):

* :math:`\lVert \partial \mathcal L / \partial \theta_l \rVert`, the norm of the gradient of
  all parameters of layer :math:`l`;
* :math:`\lVert \partial \mathcal L / \partial x_l \rVert`, the gradient reaching the input of
  layer :math:`l` (the residual stream, or the activations between layers without skips),
  taken as the gradient of a zero added to :math:`x_l`;
* the ratio of the first layer's parameter-gradient norm to the last's: 1 when every layer
  learns at the same rate; :math:`\ll 1` when the gradient vanishes on its way down, :math:`\gg 1`
  when it grows;
* the training loss per step and the validation loss at the end, against the loss of predicting
  every character from its frequency alone (:func:`unigram_loss`).

What it shows.  At initialisation every stack passes gradient to its first layer: each variant
has a LayerNorm in every layer, which rescales the signal on the way up and the gradient on the
way down, so at these depths the stacks without skips are not yet starved (the ratios stay
within a factor of about 10 of 1); pre-LN gives its first layer *more* gradient than its last,
increasingly with depth (the mismatch Shleifer et al., "NormFormer", 2021, describe).  The
difference opens during training: within a hundred steps the first layer's gradient in the
stacks without skips falls by orders of magnitude that grow with depth (about :math:`10^{-13}`
of the last layer's at :math:`L = 32`), and those stacks stay at the character-frequency loss;
post-LN with residuals, trained with the same short warmup, starves its first layers too (Xiong
et al., "On Layer Normalization in the Transformer Architecture", 2020, on post-LN's need for
warmup), while pre-LN keeps every layer learning.  ``claims`` holds the directions that held at
every seed tried at the tiny size; ``observations`` the rest, with whether they held.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.train import TrainConfig, make_optimizer
from experiments.weekly import common
from model.attention import causal_mask
from model.block import TransformerBlock, transformer_block
from model.feedforward import FFN_BY_ACTIVATION
from model.gpt import embed, lm_logits
from model.loss import cross_entropy
from model.multihead import multi_head_attention
from model.normalization import layer_norm
from model.residual import residual

__all__ = ["DEPTHS", "NAME", "TINY_DEPTHS", "TITLE", "VARIANTS", "WEEK", "ResidualSetup", "init_params",
           "layer_function", "measure", "post_ln_causal", "post_ln_no_residual", "pre_ln_no_residual", "run",
           "unigram_loss"]

NAME = "residual"
WEEK = 11
TITLE = "Residual connections: gradient norms through depth with and without skips, pre-LN vs post-LN"

#: the four stacks, in the order of the figures
VARIANTS = ("pre_ln", "post_ln", "pre_ln_no_residual", "post_ln_no_residual")
#: how the figures name them
LABELS = {"pre_ln": "pre-LN, residual", "post_ln": "post-LN, residual",
          "pre_ln_no_residual": "pre-LN, no residual", "post_ln_no_residual": "post-LN, no residual"}
#: the depths of the default run and of the tiny run
DEPTHS, TINY_DEPTHS = (2, 4, 8, 16, 32), (2, 4, 8)
#: the loss curves are drawn as the running mean over this many steps
LOSS_WINDOW = 10
#: "starved": a first/last gradient ratio below this
VANISHED = 0.1
#: the standard deviation of the embeddings (GPT-2's init_std)
EMBEDDING_STD = 0.02

_ATTENTION = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")


@dataclass(frozen=True, kw_only=True)
class ResidualSetup:
    """The sizes of the stacks and of their training; presets :meth:`default` and :meth:`tiny`."""

    depths: tuple[int, ...]
    """The numbers of layers L compared (kept in increasing order)."""
    d_model: int
    """D."""
    n_heads: int
    """H."""
    d_ff: int
    """F."""
    context: int
    """T: characters per sequence."""
    activation: str
    """The FFN activation, a name in model.feedforward.FFN_BY_ACTIVATION."""
    eps: float
    """The LayerNorm epsilon."""
    steps: int
    """Optimizer updates per stack."""
    batch_size: int
    """Sequences per update."""
    probe_batches: int
    """Fixed training batches (of ``batch_size`` sequences) on which the gradient norms are measured and averaged."""
    lr: float
    """The peak learning rate."""
    min_lr: float
    """The learning rate at the end of the cosine decay."""
    warmup_steps: int
    """Steps of the linear warmup."""
    eval_batches: int
    """Validation batches of ``batch_size`` sequences in the final loss."""
    corpus_chars: int
    """Characters of the corpus used (its first ones; 10% of them held out for validation)."""

    def __post_init__(self):
        for name in ("d_model", "n_heads", "d_ff", "context", "steps", "batch_size", "probe_batches", "eval_batches",
                     "corpus_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        object.__setattr__(self, "depths", tuple(sorted(self.depths)))
        if not self.depths or any(isinstance(d, bool) or not isinstance(d, int) or d < 2 for d in self.depths):
            raise ValueError(f"depths: expected integers >= 2 (a first and a last layer), got {self.depths!r}")
        if self.activation not in FFN_BY_ACTIVATION:
            raise ValueError(f"activation: expected one of {tuple(FFN_BY_ACTIVATION)}, got {self.activation!r}")
        self.train_config(0)  # checks lr, min_lr, warmup_steps

    @classmethod
    def default(cls) -> ResidualSetup:
        """Depths 2..32, D = 32, H = 2, F = 128, T = 32; 100 steps of 8 sequences, lr 3e-3."""
        return cls(depths=DEPTHS, d_model=32, n_heads=2, d_ff=128, context=32, activation="relu", eps=1e-5,
                   steps=100, batch_size=8, probe_batches=4, lr=3e-3, min_lr=3e-4, warmup_steps=10,
                   eval_batches=4, corpus_chars=1_000_000)

    @classmethod
    def tiny(cls) -> ResidualSetup:
        """Depths 2, 4, 8 with the same widths and T = 16; 20 steps of 8: seconds, for the tests."""
        return cls(depths=TINY_DEPTHS, d_model=32, n_heads=2, d_ff=128, context=16, activation="relu", eps=1e-5,
                   steps=20, batch_size=8, probe_batches=2, lr=3e-3, min_lr=3e-4, warmup_steps=4,
                   eval_batches=2, corpus_chars=200_000)

    def scaled(self, scale: int) -> ResidualSetup:
        """``scale`` times the training steps, warmup, probe batches and evaluation batches."""
        return dataclasses.replace(self, steps=self.steps * scale, warmup_steps=self.warmup_steps * scale,
                                   probe_batches=self.probe_batches * scale, eval_batches=self.eval_batches * scale)

    def train_config(self, seed: int) -> TrainConfig:
        """The optimizer settings as a :class:`experiments.train.TrainConfig`."""
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, min_lr=self.min_lr,
                           warmup_steps=self.warmup_steps, eval_batches=self.eval_batches, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name."""
        return {**dataclasses.asdict(self), "depths": list(self.depths)}


# --- the layers ----------------------------------------------------------------------------------------


def post_ln_causal(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, gamma_2, beta_2, w_1, b_1, w_2, b_2,
                   *, n_heads: int, eps, mask=None, activation: str = "relu"):
    r"""The post-LN layer with an attention mask of any shape (causal for a language model).

    .. math:: u = \operatorname{LN}_1\bigl(x + \operatorname{MHA}(x, M)\bigr), \qquad
              y = \operatorname{LN}_2\bigl(u + \operatorname{FFN}(u)\bigr)

    :func:`model.bert.post_ln_layer` with its padding mask replaced by the ``[T, T]`` mask ``M``
    of :func:`model.multihead.multi_head_attention`; with ``mask=None`` the two are the same function.

    Args:
        x: ``[..., T, D]``; the parameters as :func:`model.block.transformer_block` names them.
        n_heads: H.
        eps: the LayerNorm epsilon.
        mask: boolean ``[..., T, T]`` (e.g. :func:`model.attention.causal_mask`) or ``None``.
        activation: the FFN activation.

    Returns:
        ``[..., T, D]``.
    """
    ffn = FFN_BY_ACTIVATION[activation]

    def attend(z):
        return multi_head_attention(z, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, n_heads=n_heads, mask=mask)

    u = layer_norm(residual(x, attend), gamma_1, beta_1, eps=eps)
    return layer_norm(residual(u, lambda z: ffn(z, w_1, b_1, w_2, b_2)), gamma_2, beta_2, eps=eps)


def pre_ln_no_residual(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, gamma_2, beta_2, w_1, b_1, w_2,
                       b_2, *, n_heads: int, eps, mask=None, activation: str = "relu"):
    r"""The pre-LN sublayers without their skips: :math:`y = \operatorname{FFN}(\operatorname{LN}_2(h))`, :math:`h = \operatorname{MHA}(\operatorname{LN}_1(x), M)`.

    Arguments as :func:`model.block.transformer_block`; returns ``[..., T, D]``.
    """
    h = multi_head_attention(layer_norm(x, gamma_1, beta_1, eps=eps), w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o,
                             n_heads=n_heads, mask=mask)
    return FFN_BY_ACTIVATION[activation](layer_norm(h, gamma_2, beta_2, eps=eps), w_1, b_1, w_2, b_2)


def post_ln_no_residual(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, gamma_2, beta_2, w_1, b_1, w_2,
                        b_2, *, n_heads: int, eps, mask=None, activation: str = "relu"):
    r"""The post-LN sublayers without their skips: :math:`y = \operatorname{LN}_2(\operatorname{FFN}(u))`, :math:`u = \operatorname{LN}_1(\operatorname{MHA}(x, M))`.

    Arguments as :func:`model.block.transformer_block`; returns ``[..., T, D]``.
    """
    u = layer_norm(multi_head_attention(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, n_heads=n_heads, mask=mask),
                   gamma_1, beta_1, eps=eps)
    return layer_norm(FFN_BY_ACTIVATION[activation](u, w_1, b_1, w_2, b_2), gamma_2, beta_2, eps=eps)


_LAYERS = {"pre_ln": transformer_block, "post_ln": post_ln_causal, "pre_ln_no_residual": pre_ln_no_residual,
           "post_ln_no_residual": post_ln_no_residual}


def layer_function(variant: str):
    """The layer of ``variant`` (one of :data:`VARIANTS`): ``f(x, **params, n_heads, eps, mask, activation)``."""
    if variant not in _LAYERS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return _LAYERS[variant]


# --- the model around the stack --------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _draw_layers(shape: tuple, keys):
    """``TransformerBlock(D, H, F, eps, activation)``'s own parameters drawn from each key, stacked ``[L, ...]``."""
    d_model, n_heads, d_ff, eps, activation = shape

    def draw(key):
        return TransformerBlock(d_model, n_heads, d_ff, eps=eps, activation=activation,
                                rngs=nnx.Rngs(params=key)).params()

    return jax.vmap(draw)(keys)


def init_params(setup: ResidualSetup, vocab_size: int, n_layers: int, seed: int) -> dict[str, Any]:
    r"""Embeddings, ``n_layers`` layers (stacked: each leaf ``[L, ...]``) and the final LayerNorm.

    Layer ``l`` is :class:`model.block.TransformerBlock`'s own draw from the ``l``-th of ``n_layers`` keys
    split from the seed (all layers drawn in one compiled, vectorised call); the embeddings are
    :math:`\mathcal N(0, 0.02^2)`, the final LayerNorm's gain 1 and shift 0.
    """
    k_te, k_pe, k_layers = jax.random.split(jax.random.key(seed), 3)
    keys = jax.random.split(k_layers, n_layers)
    layers = _draw_layers((setup.d_model, setup.n_heads, setup.d_ff, setup.eps, setup.activation), keys)
    d = setup.d_model
    return {"wte": EMBEDDING_STD * jax.random.normal(k_te, (vocab_size, d), jnp.float32),
            "wpe": EMBEDDING_STD * jax.random.normal(k_pe, (setup.context, d), jnp.float32),
            "layers": layers,
            "ln_f_gamma": jnp.ones((d,), jnp.float32), "ln_f_beta": jnp.zeros((d,), jnp.float32)}


def _loss(shape: tuple, params, variant_index, depth, deltas_LBTD, x_BT, y_BT):
    """Mean next-character cross-entropy of the first ``depth`` layers of one variant's stack.

    ``deltas`` (zeros ``[L, B, T, D]``) are added to each layer's input, so their gradient is the
    gradient at that input.  The stacked layers run under ``lax.scan``; at layer ``l`` a
    ``lax.switch`` runs the layer function of :data:`VARIANTS` ``[variant_index]`` when
    ``l < depth`` and the identity otherwise, so one compiled function serves every variant and
    every depth up to the number of stacked layers (only the chosen branch runs).
    """
    n_heads, eps, activation = shape
    t = x_BT.shape[-1]
    mask = causal_mask(t, t)
    x = embed(x_BT, params["wte"], params["wpe"])
    n_layers = deltas_LBTD.shape[0]
    skip = len(VARIANTS)

    def body(h, inputs):
        index, p, delta = inputs
        branches = [functools.partial(_apply, layer_function(v), p, n_heads=n_heads, eps=eps, mask=mask,
                                      activation=activation) for v in VARIANTS]
        branch = jnp.where(index < depth, variant_index, skip)
        return jax.lax.switch(branch, [*branches, lambda u: u], h + delta), None

    h, _ = jax.lax.scan(body, x, (jnp.arange(n_layers), params["layers"], deltas_LBTD))
    logits = lm_logits(h, params["ln_f_gamma"], params["ln_f_beta"], params["wte"].T, eps=eps)
    return jnp.mean(cross_entropy(logits, y_BT))


def _apply(layer, p, u, **settings):
    """``layer(u, **p, **settings)``: one layer with its parameters (a branch of the switch)."""
    return layer(u, **p, **settings)


def _per_layer_norm(tree) -> jax.Array:
    """``[L]``: the Euclidean norm over every leaf's entries of layer ``l`` (leaves ``[L, ...]``)."""
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1) for g in leaves))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _step(shape, tc: TrainConfig, params, opt_state, variant_index, depth, x_BT, y_BT):
    """One update of the first ``depth`` layers, with the loss and the per-layer gradient norms before it."""
    n_layers = jax.tree.leaves(params["layers"])[0].shape[0]
    deltas = jnp.zeros((n_layers, *x_BT.shape, params["wte"].shape[1]), jnp.float32)

    def loss_fn(params_, deltas_):
        return _loss(shape, params_, variant_index, depth, deltas_, x_BT, y_BT)

    loss, (grads, g_deltas) = jax.value_and_grad(loss_fn, argnums=(0, 1))(params, deltas)
    updates, opt_state = make_optimizer(tc).update(grads, opt_state, params)
    norms = {"param": _per_layer_norm(grads["layers"]), "stream": _per_layer_norm(g_deltas)}
    return optax.apply_updates(params, updates), opt_state, loss, norms


class _Stack:
    """One variant's stack of stacked layers, trained at a chosen depth by the one compiled step."""

    def __init__(self, variant: str, setup: ResidualSetup, params, seed: int):
        layer_function(variant)
        self.variant_index = jnp.int32(VARIANTS.index(variant))
        self.shape = (setup.n_heads, setup.eps, setup.activation)
        self.tc = setup.train_config(seed)
        self.params = params
        self.opt_state = make_optimizer(self.tc).init(params)

    def step(self, depth: int, x_BT, y_BT, *, update: bool = True):
        """The loss and norms on a batch; with ``update`` the parameters and optimizer state move on."""
        params, opt_state, loss, norms = _step(self.shape, self.tc, self.params, self.opt_state, self.variant_index,
                                               jnp.int32(depth), jnp.asarray(x_BT), jnp.asarray(y_BT))
        if update:
            self.params, self.opt_state = params, opt_state
        return loss, norms


def measure(variant: str, setup: ResidualSetup, params, depth: int, batches) -> dict[str, Any]:
    r"""The loss and the per-layer gradient norms of the first ``depth`` layers, averaged over ``batches``.

    Args:
        variant: one of :data:`VARIANTS`.
        setup: the sizes (heads, epsilon, activation).
        params: from :func:`init_params` (any number of stacked layers ``>= depth``).
        depth: the layers used.
        batches: ``(x, y)`` pairs of int ids ``[B, T]``.

    Returns:
        ``loss``, ``param`` (:math:`\lVert\partial\mathcal L/\partial\theta_l\rVert`, a list over the
        ``depth`` layers, first layer first) and ``stream`` (:math:`\lVert\partial\mathcal L/\partial x_l\rVert`,
        the gradient at each layer's input), each the mean over the batches.
    """
    stack = _Stack(variant, setup, params, 0)
    return _measure(stack, depth, batches)


def _measure(stack: _Stack, depth: int, batches) -> dict[str, Any]:
    got = [jax.device_get(stack.step(depth, x, y, update=False)) for x, y in batches]
    return {"loss": float(np.mean([g[0] for g in got])),
            "param": np.mean([g[1]["param"][:depth] for g in got], axis=0).tolist(),
            "stream": np.mean([g[1]["stream"][:depth] for g in got], axis=0).tolist()}


# --- data, checks, the runs -----------------------------------------------------------------------------


def _corpus(setup: ResidualSetup):
    """The first ``corpus_chars`` characters of the built-in Shakespeare as token data (90% train, 10% val)."""
    from experiments.data import TokenData, shakespeare_text
    from model.tokenizer import CharTokenizer

    text = shakespeare_text()
    tokenizer = CharTokenizer.from_text(text)
    ids = np.asarray(tokenizer.encode(text[:setup.corpus_chars]), dtype=np.int32)
    cut = int(0.9 * ids.shape[0])
    return TokenData.from_arrays(train=ids[:cut], val=ids[cut:], vocab_size=tokenizer.vocab_size)


def unigram_loss(data, setup: ResidualSetup, seed: int) -> float:
    r"""The validation loss of predicting every character from its training frequency alone.

    :func:`model.loss.cross_entropy` of the logits :math:`\log p(v)` (``p`` the character frequencies of the
    training split, add-one smoothed) on the validation batches the stacks are evaluated on: the level a
    model reaches when it learns the frequencies and nothing about the context.
    """
    counts = np.bincount(np.asarray(data.split("train")), minlength=data.vocab_size) + 1.0
    log_p = jnp.asarray(np.log(counts / counts.sum()), jnp.float32)
    batches = data.iter_eval_batches("val", setup.batch_size, setup.context, setup.eval_batches, seed)

    @jax.jit
    def loss(y_BT):
        return jnp.mean(cross_entropy(jnp.broadcast_to(log_p, (*y_BT.shape, log_p.shape[0])), y_BT))

    return float(np.mean([float(loss(jnp.asarray(y))) for _, y in batches]))


def _run_one(variant: str, depth: int, setup: ResidualSetup, params, data, seed: int, probe, bar):
    """Measure one stack at initialisation, train its first ``depth`` layers, measure again; its loss curve."""
    stack = _Stack(variant, setup, params, seed)
    at_init = _measure(stack, depth, probe)
    losses = []
    for s in range(stack.tc.steps):
        x, y = data.batch("train", setup.batch_size, setup.context, seed=seed, step=s)
        loss, _ = stack.step(depth, x, y)
        losses.append(float(loss))
        if bar is not None:
            bar.update(1)
    trained = _measure(stack, depth, probe)
    val = _measure(stack, depth, data.iter_eval_batches("val", setup.batch_size, setup.context, setup.eval_batches,
                                                        seed))["loss"]
    return {"variant": variant, "depth": depth, "init": at_init, "trained": trained, "train_loss": losses,
            "val_loss": val}


def _ratio(norms: list[float]) -> float:
    return norms[0] / norms[-1] if norms[-1] > 0 else float("inf")


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """Gradient norms per layer, with and without residuals, pre-LN and post-LN, at every depth; results and figures.

    Args:
        out_dir: folder for ``results.json`` and the figures ``residual_gradients``,
            ``residual_gradient_ratio`` and ``residual_loss`` (PNG and SVG).
        scale: a positive int: multiplies the training steps, the probe batches and the evaluation batches.
        seed: seeds the layers' and embeddings' initial values and the batches.
        progress: show a bar over the training steps.
        tiny: :meth:`ResidualSetup.tiny` (depths 2, 4, 8; 20 steps): seconds, for the tests.

    Returns:
        what ``results.json`` holds: ``setup``, ``runs`` (per variant and depth: gradient norms per layer
        at init and after training, the loss per step, the validation loss), ``ratio`` (first/last
        layer parameter-gradient norm per variant and depth), ``stream_ratio`` (the same for the gradient
        at the layers' inputs), ``first_layer_gradient``, ``unigram_loss``, ``claims``,
        ``observations`` and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    scale = common.check_scale(scale)
    out = common.output_dir(out_dir)
    setup = (ResidualSetup.tiny() if tiny else ResidualSetup.default()).scaled(scale)
    common.say(NAME, progress, "reading the Shakespeare corpus")
    data = _corpus(setup)
    tc = setup.train_config(seed)
    probe = list(data.iter_eval_batches("train", setup.batch_size, setup.context, setup.probe_batches, seed))
    params = init_params(setup, data.vocab_size, max(setup.depths), seed)
    bar = common.progress_bar(len(VARIANTS) * len(setup.depths) * tc.steps, progress, "residual: training stacks")
    runs = []
    try:
        for depth in setup.depths:
            for variant in VARIANTS:
                runs.append(_run_one(variant, depth, setup, params, data, seed, probe, bar))
    finally:
        if bar is not None:
            bar.close()

    def by(variant, depth):
        return next(r for r in runs if r["variant"] == variant and r["depth"] == depth)

    ratio = {when: {v: [_ratio(by(v, d)[when]["param"]) for d in setup.depths] for v in VARIANTS}
             for when in ("init", "trained")}
    stream_ratio = {when: {v: [_ratio(by(v, d)[when]["stream"]) for d in setup.depths] for v in VARIANTS}
                    for when in ("init", "trained")}
    first = {when: {v: [by(v, d)[when]["param"][0] for d in setup.depths] for v in VARIANTS}
             for when in ("init", "trained")}
    m: dict[str, Any] = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "setup": {"scale": scale, "tiny": tiny, "seed": seed, "backend": jax.default_backend(),
                  "sizes": setup.to_dict(), "train": tc.to_dict(), "vocab_size": data.vocab_size,
                  "variants": {v: LABELS[v] for v in VARIANTS},
                  "post_ln": "composed from layer_norm, multi_head_attention(mask=causal_mask), the FFN and "
                             "residual (post_ln_causal), because model.bert.post_ln_layer takes a padding mask "
                             "and attends both ways; without a mask the two agree",
                  "init": "each layer: model.block.TransformerBlock's own draw (Glorot-uniform attention, "
                          "LeCun-normal FFN); embeddings N(0, 0.02²); tied head; no 1/sqrt(2L) scaling",
                  "probe": f"gradient norms averaged over {setup.probe_batches} fixed training batches of "
                           f"{setup.batch_size} sequences",
                  "depth": "one stack of max(depths) layers per variant; a depth uses its first layers (the "
                           "others are skipped by lax.switch), so every depth starts from the same first layers",
                  "loss": "mean next-character cross-entropy (model.loss.cross_entropy)"},
        "depths": list(setup.depths),
        "runs": runs,
        "ratio": ratio, "stream_ratio": stream_ratio, "first_layer_gradient": first,
        "unigram_loss": unigram_loss(data, setup, seed),
    }
    m["claims"] = _claims(m)
    m["observations"] = _observations(m)
    common.say(NAME, progress, "drawing figures")
    m["figures"] = _figure_gradients(out, m) + _figure_ratio(out, m) + _figure_loss(out, m)
    common.write_results(out, m)
    return m


def _log_distance(x: float) -> float:
    """``|log x|``: how far a ratio is from 1, in either direction."""
    return abs(float(np.log(x)))


def _relative_first(m: dict[str, Any], when: str) -> dict[str, list[float]]:
    """Each variant's first-layer gradient norm divided by pre-LN's, at every depth."""
    first = m["first_layer_gradient"][when]
    return {v: [a / b for a, b in zip(first[v], first["pre_ln"], strict=True)] for v in VARIANTS}


def _claims(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims the tests check on the tiny run (each with its evidence and whether it holds here)."""
    r, r0 = m["ratio"]["trained"], m["ratio"]["init"]
    deepest = m["depths"][-1]
    rel = _relative_first(m, "trained")
    no_skip = ("pre_ln_no_residual", "post_ln_no_residual")
    return [
        {"claim": f"after the short training, at the deepest depth (L = {deepest}), the first/last layer gradient "
                  "ratio is closer to 1 (in log) with pre-LN residuals than in either stack without residuals",
         "holds": all(_log_distance(r["pre_ln"][-1]) < _log_distance(r[v][-1]) for v in no_skip),
         "evidence": {v: r[v][-1] for v in VARIANTS}},
        {"claim": "after the short training, without residuals the first layer's gradient norm, relative to pre-LN "
                  "with residuals, is smaller at the deepest depth than at the shallowest (the gradient vanishes "
                  "on its way down)",
         "holds": all(rel[v][-1] < rel[v][0] for v in no_skip),
         "evidence": {v: rel[v] for v in no_skip}},
        {"claim": f"after the short training, post-LN with residuals also starves its first layer: the first/last "
                  f"ratio at the deepest depth is below {VANISHED:g}",
         "holds": r["post_ln"][-1] < VANISHED,
         "evidence": {"post-LN first/last, by depth": r["post_ln"]}},
        {"claim": "at initialisation, pre-LN's first layer gets a larger gradient than its last (ratio > 1), and "
                  "more so in the deepest stack than in the shallowest",
         "holds": r0["pre_ln"][-1] > r0["pre_ln"][0] > 1.0,
         "evidence": {"pre-LN first/last at init, by depth": r0["pre_ln"]}},
    ]


def _observations(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Measured directions reported for the lesson, not asserted by the tests (they vary with size and seed)."""
    r = m["ratio"]
    depths = m["depths"]
    rel_init = _relative_first(m, "init")
    val = {v: [next(x["val_loss"] for x in m["runs"] if x["variant"] == v and x["depth"] == d) for d in depths]
           for v in VARIANTS}
    no_skip = ("pre_ln_no_residual", "post_ln_no_residual")
    return [
        {"observation": "at initialisation, at the deepest depth, the first/last ratio is closer to 1 with pre-LN "
                        "residuals than in either stack without residuals (at these depths the LayerNorms keep "
                        "the stacks without skips trainable at first; the gap opens during training)",
         "holds": all(_log_distance(r["init"]["pre_ln"][-1]) < _log_distance(r["init"][v][-1]) for v in no_skip),
         "evidence": {v: r["init"][v][-1] for v in VARIANTS}},
        {"observation": "at initialisation, without residuals the first layer's gradient relative to pre-LN's "
                        "moves away from 1 as the stack deepens",
         "holds": all(_log_distance(rel_init[v][-1]) > _log_distance(rel_init[v][0]) for v in no_skip),
         "evidence": {v: rel_init[v] for v in no_skip}},
        {"observation": "at the deepest depth, pre-LN with residuals reaches the lowest validation loss",
         "holds": min(VARIANTS, key=lambda v: val[v][-1]) == "pre_ln",
         "evidence": {"validation loss at each depth": val}},
        {"observation": "at the deepest depth, the stacks without residuals end within 0.05 nats of the unigram "
                        "loss (they learned the character frequencies and little else)",
         "holds": all(abs(val[v][-1] - m["unigram_loss"]) < 0.05 for v in no_skip),
         "evidence": {"unigram loss": m["unigram_loss"], **{v: val[v][-1] for v in no_skip}}},
    ]


# --- figures ----------------------------------------------------------------------------------------------


def _depth_colors(depths):
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return {d: cmap(i / max(len(depths) - 1, 1)) for i, d in enumerate(depths)}


def _figure_gradients(out, m) -> list[str]:
    depths = m["depths"]
    colors = _depth_colors(depths)
    fig, axes = common.figure(2, len(VARIANTS), figsize=(4.2 * len(VARIANTS), 7.6), sharey=True)
    for i, when in enumerate(("init", "trained")):
        for j, variant in enumerate(VARIANTS):
            ax = axes[i, j]
            for d in depths:
                r = next(x for x in m["runs"] if x["variant"] == variant and x["depth"] == d)
                ax.semilogy(np.arange(1, d + 1), r[when]["param"], "o-", ms=2.5, color=colors[d], label=f"L = {d}")
            ax.set_title(f"{LABELS[variant]}, {'at init' if when == 'init' else 'trained'}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
        axes[i, 0].set_ylabel("‖∂loss/∂θ_l‖ (parameters of layer l)")
    for ax in axes[-1]:
        ax.set_xlabel("layer l (1 = next to the embeddings)")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(f"Gradient norm per layer at initialisation (top) and after {m['setup']['sizes']['steps']} "
                 f"training steps (bottom); next-character prediction, D = {m['setup']['sizes']['d_model']}")
    return common.save_figure(fig, out, "residual_gradients")


def _figure_ratio(out, m) -> list[str]:
    depths = m["depths"]
    fig, axes = common.figure(1, 2, figsize=(12, 4.4), sharey=True)
    for ax, when in zip(axes, ("init", "trained"), strict=True):
        for k, variant in enumerate(VARIANTS):
            ax.loglog(depths, m["ratio"][when][variant], "o-", color=f"C{k}", label=LABELS[variant])
        ax.axhline(1.0, color="k", lw=1, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set_xlabel("depth L (layers)")
        ax.set_title("at initialisation" if when == "init" else "after training")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("‖∂loss/∂θ_1‖ / ‖∂loss/∂θ_L‖ (first / last layer)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Does the gradient reach the first layer? First/last layer gradient norm against depth (1 = even)")
    return common.save_figure(fig, out, "residual_gradient_ratio")


def _running_mean(x, window: int) -> np.ndarray:
    """The mean of the last ``window`` values at each step (fewer at the start)."""
    c = np.cumsum(np.insert(np.asarray(x, dtype=np.float64), 0, 0.0))
    n = np.arange(1, len(x) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def _figure_loss(out, m) -> list[str]:
    depths = m["depths"]
    cols = -(-(len(depths) + 1) // 2)
    fig, axes = common.figure(2, cols, figsize=(4.4 * cols, 7.4), squeeze=False)
    axes = axes.ravel()
    for ax, d in zip(axes, depths, strict=False):
        for k, variant in enumerate(VARIANTS):
            r = next(x for x in m["runs"] if x["variant"] == variant and x["depth"] == d)
            steps = np.arange(1, len(r["train_loss"]) + 1)
            ax.plot(steps, r["train_loss"], color=f"C{k}", lw=0.6, alpha=0.25)
            ax.plot(steps, _running_mean(r["train_loss"], LOSS_WINDOW), color=f"C{k}", lw=1.5, label=LABELS[variant])
        ax.set_title(f"L = {d}: training loss")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"nats per character (faint: per step; line: mean of {LOSS_WINDOW})", fontsize=8)
        ax.grid(True, alpha=0.3)
    last = axes[len(depths)]
    for k, variant in enumerate(VARIANTS):
        val = [next(x["val_loss"] for x in m["runs"] if x["variant"] == variant and x["depth"] == d) for d in depths]
        last.plot(depths, val, "o-", color=f"C{k}", label=LABELS[variant])
    for ax in axes[:len(depths) + 1]:
        ax.axhline(m["unigram_loss"], color="k", ls=":", lw=1, label="character frequencies only")
    last.set_xscale("log", base=2)
    last.set_xticks(depths, [str(d) for d in depths])
    last.set_xlabel("depth L")
    last.set_ylabel("validation loss after training")
    last.set_title("final validation loss")
    last.grid(True, alpha=0.3)
    last.legend(fontsize=8)
    for ax in axes[len(depths) + 1:]:
        ax.set_visible(False)
    fig.suptitle("Training the four stacks at each depth (same data, initial layers and optimizer)")
    fig.tight_layout()
    return common.save_figure(fig, out, "residual_loss")
