"""The PyTorch reference for ``tfd bench``: the same GPT, written nanoGPT-style.

The model matches :class:`model.gpt.GPT` for the configs the benchmark uses (learned
positions, a tied output head, pre-LN blocks with biases, ReLU / GELU / tanh-GELU
FFN, LayerNorm ε from the config, no dropout) and the train step matches
:func:`experiments.train.make_train_step`: mean next-token cross-entropy, the gradient,
global-norm clipping, then AdamW with decoupled weight decay on the matrices only.
Attention uses ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``,
as nanoGPT does.  The parameter count equals the JAX model's (checked by the
benchmark's test), so the two sides do the same work.

PyTorch is optional: install the ``bench`` extra (``pip install torch==2.13.0`` on a
CPU machine first, so that pip takes the CPU build).  This module imports torch when
its functions are called, never at import time.

Reference: A. Karpathy, nanoGPT (``model.py``, ``train.py``).
"""

from __future__ import annotations

import math
import time

__all__ = ["Runner", "available", "build", "load_params"]


def available() -> str | None:
    """``None`` when PyTorch can be imported, else the reason and how to install it."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        return (f"PyTorch is not installed ({e}); install it with `pip install torch==2.13.0` "
                "(CPU) or the bench extra: pip install -e '.[bench]'")
    return None


def build(config, *, seed: int = 0, device: str = "cpu", dtype: str = "float32"):
    """The PyTorch GPT for a :class:`model.gpt.GPTConfig` (learned or no positions, tied or untied head)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    if config.positional not in ("learned", "none"):
        raise ValueError(f"the PyTorch reference has learned or no positions; got positional={config.positional!r}")
    acts = {"relu": nn.ReLU, "gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh")}
    D, H, L = config.d_model, config.n_heads, config.n_layers
    bias = config.bias

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(D, eps=config.eps, bias=bias)
            self.c_attn = nn.Linear(D, 3 * D, bias=bias)
            self.c_proj = nn.Linear(D, D, bias=bias)
            self.ln_2 = nn.LayerNorm(D, eps=config.eps, bias=bias)
            self.fc = nn.Linear(D, config.d_ff, bias=bias)
            self.act = acts[config.activation]()
            self.proj = nn.Linear(config.d_ff, D, bias=bias)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
            q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, D))
            return x + self.proj(self.act(self.fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(config.vocab_size, D)
            self.wpe = nn.Embedding(config.context, D) if config.positional == "learned" else None
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(D, eps=config.eps, bias=bias)
            self.head = nn.Linear(D, config.vocab_size, bias=False)
            if config.tie_embeddings:
                self.head.weight = self.wte.weight
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    std = config.init_std / math.sqrt(2 * L) if name.endswith(("c_proj.weight", "proj.weight")) \
                        else config.init_std
                    nn.init.normal_(p, 0.0, std)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx):
            x = self.wte(idx)
            if self.wpe is not None:
                x = x + self.wpe(torch.arange(idx.shape[1], device=idx.device))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    torch.manual_seed(seed)
    return GPT().to(device=device, dtype=getattr(torch, dtype))


def load_params(model, params) -> None:
    """Copy our GPT's parameters (``nnx.state(gpt, nnx.Param)``) into the PyTorch GPT of the same config.

    Used by the tests to show that the two compute the same logits, i.e. that the
    benchmark compares the same model.  PyTorch's ``Linear`` holds ``W^T``; ``c_attn``
    holds ``[W_Q  W_K  W_V]^T``.
    """
    import numpy as np
    import torch

    def put(dst, value):
        with torch.no_grad():
            dst.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))

    p = params
    put(model.wte.weight, p["wte"][...])
    if model.wpe is not None:
        put(model.wpe.weight, p["wpe"][...])
    for i, block in enumerate(model.blocks):
        b = p["blocks"][i]
        attn, ffn = b["attn"], b["ffn"]
        put(block.c_attn.weight, np.concatenate([attn[n][...] for n in ("w_q", "w_k", "w_v")], axis=1).T)
        put(block.c_proj.weight, np.asarray(attn["w_o"][...]).T)
        put(block.fc.weight, np.asarray(ffn["w_1"][...]).T)
        put(block.proj.weight, np.asarray(ffn["w_2"][...]).T)
        for ln, name in ((block.ln_1, "ln1"), (block.ln_2, "ln2")):
            put(ln.weight, b[name]["gamma"][...])
        if block.c_attn.bias is not None:
            put(block.c_attn.bias, np.concatenate([attn[n][...] for n in ("b_q", "b_k", "b_v")]))
            put(block.c_proj.bias, attn["b_o"][...])
            put(block.fc.bias, ffn["b_1"][...])
            put(block.proj.bias, ffn["b_2"][...])
            put(block.ln_1.bias, b["ln1"]["beta"][...])
            put(block.ln_2.bias, b["ln2"]["beta"][...])
    put(model.ln_f.weight, p["ln_f"]["gamma"][...])
    if model.ln_f.bias is not None:
        put(model.ln_f.bias, p["ln_f"]["beta"][...])
    if model.head.weight is not model.wte.weight:
        put(model.head.weight, np.asarray(p["w_head"][...]).T)


class Runner:
    """The PyTorch GPT and its AdamW train step on a fixed random batch, ready to time.

    ``run(n)`` makes ``n`` updates and returns the seconds of each, every one ending when
    the loss is on the host (and, on CUDA, the device is synchronized).
    """

    def __init__(self, config, train_config, *, batch_size: int, seed: int = 0, device: str = "cpu",
                 threads: int | None = None, autocast_bf16: bool = False):
        import numpy as np
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        self.torch, self.device, self.autocast_bf16 = torch, device, autocast_bf16
        self.model = build(config, seed=seed, device=device)
        tc = train_config
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}],
                                     lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps, foreach=True)
        self.grad_clip = tc.grad_clip
        rng = np.random.default_rng(seed)
        seq = torch.from_numpy(rng.integers(0, config.vocab_size, (batch_size, config.context + 1))).to(device)
        self.inputs, self.targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
        self.parameters = int(sum(p.numel() for p in self.model.parameters()))
        self.threads = torch.get_num_threads()
        self.version = torch.__version__
        self.loss = float("nan")

    def _step(self):
        torch = self.torch
        with torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.autocast_bf16):
            logits = self.model(self.inputs)
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), self.targets.view(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        return loss.detach()

    def run(self, n: int) -> list[float]:
        seconds = []
        for _ in range(n):
            t = time.perf_counter()
            self.loss = float(self._step())
            if self.device.startswith("cuda"):
                self.torch.cuda.synchronize()
            seconds.append(time.perf_counter() - t)
        return seconds
