r"""The peak FLOP/s of a device, the denominator of the model FLOPs utilisation (MFU).

.. math:: \mathrm{MFU} = \frac{\text{tokens/s} \times \text{FLOPs per token}}{\text{peak FLOP/s}}

(Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022,
appendix B: the FLOPs the model needs, not those the hardware happened to run,
over the peak of the arithmetic the matmuls use.)

Where the peak comes from, by platform:

* **CPU**: measured, because no datasheet describes an arbitrary CPU.
  :func:`measure_matmul_peak` times a jit-compiled square matmul
  (:math:`2n^3` FLOPs), sized so the timed runs take about ``target_s``, and keeps
  the best of ``repeats`` runs: the float32 matmul ceiling this process can reach.
  The result is cached per process and device.
* **GPU / TPU**: the vendor's datasheet figure for the ``device_kind`` that JAX
  reports (:data:`DATASHEET`): dense peaks (without 2:4 structured sparsity, which
  the datasheets' headline numbers include), per arithmetic: ``bfloat16`` and
  ``float16`` tensor cores, ``tf32`` tensor cores (what a float32 matmul uses on an
  NVIDIA GPU at JAX's default precision), and ``float32`` without tensor cores (at
  ``precision="highest"``).  A device that is not in the table gives ``None``:
  no MFU is shown rather than a guessed one.
* Any platform: an explicit ``override`` (FLOP/s) wins.

:func:`matmul_dtype` says which of those arithmetics a matmul of a given parameter
dtype runs in under the current ``jax_default_matmul_precision``.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DATASHEET", "DTYPES", "Peak", "datasheet_peak", "matmul_dtype", "measure_matmul_peak", "peak_flops"]

#: the matmul arithmetics a peak can be given for
DTYPES = ("float32", "tf32", "bfloat16", "float16")

_NVIDIA = "NVIDIA datasheet, dense (no sparsity)"
_GOOGLE = "Google Cloud TPU documentation, dense bfloat16"

#: (pattern on the lower-cased ``device_kind``, product, {dtype: FLOP/s}, source); the first match wins,
#: so the more specific patterns come first.
DATASHEET: tuple[tuple[str, str, dict[str, float], str], ...] = (
    # Hopper: "NVIDIA H100 80GB HBM3" is the SXM5 card; GH200's GPU is the same H100 die at SXM clocks
    (r"\bh100\b.*\bpcie\b", "NVIDIA H100 PCIe",
     {"bfloat16": 756e12, "float16": 756e12, "tf32": 378e12, "float32": 51.2e12}, _NVIDIA),
    (r"\bh100\b.*\bnvl\b", "NVIDIA H100 NVL",
     {"bfloat16": 835e12, "float16": 835e12, "tf32": 417.5e12, "float32": 60e12}, _NVIDIA),
    (r"\bh200\b.*\bnvl\b", "NVIDIA H200 NVL",
     {"bfloat16": 835e12, "float16": 835e12, "tf32": 417.5e12, "float32": 60e12}, _NVIDIA),
    (r"\bgh200\b|\bh200\b", "NVIDIA H200 SXM / GH200",
     {"bfloat16": 989e12, "float16": 989e12, "tf32": 494.7e12, "float32": 66.9e12}, _NVIDIA),
    (r"\bh100\b", "NVIDIA H100 SXM5",
     {"bfloat16": 989e12, "float16": 989e12, "tf32": 494.7e12, "float32": 66.9e12}, _NVIDIA),
    # Ampere and Ada
    (r"\ba100\b", "NVIDIA A100",
     {"bfloat16": 312e12, "float16": 312e12, "tf32": 156e12, "float32": 19.5e12}, _NVIDIA),
    (r"\ba10\b", "NVIDIA A10",
     {"bfloat16": 125e12, "float16": 125e12, "tf32": 62.5e12, "float32": 31.2e12}, _NVIDIA),
    (r"\bl40s\b", "NVIDIA L40S",
     {"bfloat16": 362.05e12, "float16": 362.05e12, "tf32": 183e12, "float32": 91.6e12}, _NVIDIA),
    (r"\bl4\b", "NVIDIA L4",
     {"bfloat16": 121e12, "float16": 121e12, "tf32": 60e12, "float32": 30.3e12}, _NVIDIA),
    # TPUs (bfloat16 matrix units; JAX's device_kind strings)
    (r"\btpu v4\b", "TPU v4", {"bfloat16": 275e12}, _GOOGLE),
    (r"\btpu v5 ?lite\b|\btpu v5e\b", "TPU v5e", {"bfloat16": 197e12}, _GOOGLE),
    (r"\btpu v5p?\b", "TPU v5p", {"bfloat16": 459e12}, _GOOGLE),
    (r"\btpu v6 ?lite\b|\btpu v6e\b", "TPU v6e (Trillium)", {"bfloat16": 918e12}, _GOOGLE),
)


@dataclass(frozen=True)
class Peak:
    """A peak FLOP/s figure and where it came from."""

    flops_per_s: float
    """The peak, in floating-point operations per second (a multiply-add is 2)."""
    dtype: str
    """The matmul arithmetic it is the peak of (one of :data:`DTYPES`)."""
    device_kind: str
    """JAX's ``device.device_kind`` (``"cpu"``, ``"NVIDIA H100 80GB HBM3"``, ...)."""
    platform: str
    """JAX's ``device.platform`` (``"cpu"``, ``"gpu"``, ``"tpu"``)."""
    source: str
    """How it was obtained: ``"measured: ..."``, ``"datasheet: ..."`` or ``"given"``."""

    def to_dict(self) -> dict[str, Any]:
        """Every field by name: plain JSON-compatible values."""
        return asdict(self)


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    return dtype


def _device(device) -> jax.Device:
    if device is None:
        return jax.devices()[0]
    if not isinstance(device, jax.Device):
        raise TypeError(f"device: expected a jax.Device or None, got {type(device).__name__}")
    return device


def datasheet_peak(device_kind: str, dtype: str) -> tuple[float, str] | None:
    """The datasheet peak of ``device_kind`` for ``dtype`` as ``(FLOP/s, source)``, or ``None`` if not listed.

    >>> datasheet_peak("NVIDIA H100 80GB HBM3", "bfloat16")
    (989000000000000.0, 'datasheet: NVIDIA H100 SXM5, bfloat16, NVIDIA datasheet, dense (no sparsity)')
    >>> datasheet_peak("NVIDIA H100 PCIe", "tf32")[0]
    378000000000000.0
    >>> datasheet_peak("Some Future GPU", "bfloat16") is None
    True
    """
    _check_dtype(dtype)
    kind = str(device_kind).lower()
    for pattern, product, peaks, source in DATASHEET:
        if re.search(pattern, kind):
            if dtype not in peaks:
                return None
            return peaks[dtype], f"datasheet: {product}, {dtype}, {source}"
    return None


def matmul_dtype(param_dtype="float32", platform: str | None = None, precision: str | None = None) -> str:
    """The arithmetic a matmul of ``param_dtype`` operands runs in, one of :data:`DTYPES`.

    Args:
        param_dtype: the operands' dtype (``float32``, ``bfloat16``, ``float16``).
        platform: ``"cpu"``, ``"gpu"`` (or ``"cuda"``/``"rocm"``), ``"tpu"``; ``None``
            for the default device's.
        precision: a ``jax_default_matmul_precision`` value; ``None`` for the one in
            effect (``jax.default_matmul_precision`` contexts included).

    float32 operands: float32 on a CPU, and anywhere at ``"highest"``/``"float32"``;
    TF32 tensor cores on a GPU otherwise; bfloat16 passes on a TPU otherwise.

    >>> matmul_dtype("float32", "gpu", "highest"), matmul_dtype("float32", "gpu", None)
    ('float32', 'tf32')
    """
    name = jnp.dtype(param_dtype).name
    if name in ("bfloat16", "float16"):
        return name
    if name != "float32":
        raise ValueError(f"param_dtype: expected float32, bfloat16 or float16, got {name}")
    platform = jax.devices()[0].platform if platform is None else platform
    if precision is None:
        precision = jax.config.jax_default_matmul_precision
    precision = None if precision is None else str(precision).lower()
    if platform == "cpu" or precision in ("highest", "float32"):
        return "float32"
    if platform in ("gpu", "cuda", "rocm"):
        return "tf32"
    return "bfloat16"


_MEASURED: dict[tuple, Peak] = {}


def measure_matmul_peak(device=None, *, dtype: str = "float32", target_s: float = 0.15, repeats: int = 3) -> Peak:
    """The best FLOP/s of a jit-compiled square matmul ``[n, n] @ [n, n]`` (``2 n^3`` FLOPs) on ``device``.

    A first small matmul (n = 256) estimates the rate; ``n`` is then chosen (a
    multiple of 128, 256 to 8192) so that ``repeats`` runs take about ``target_s``
    seconds, one untimed run warms up, and the fastest of the timed runs counts.
    The result is cached per process for each ``(device, dtype, target_s, repeats)``.

    Args:
        device: a ``jax.Device``; ``None`` for the default one.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` operands (``"tf32"`` is
            a datasheet notion, not a dtype to measure).
        target_s: the time the timed runs should take together.
        repeats: the number of timed runs.
    """
    device = _device(device)
    if _check_dtype(dtype) == "tf32":
        raise ValueError("dtype: expected float32, bfloat16 or float16 operands to measure; "
                         "tf32 is the arithmetic of float32 matmuls on NVIDIA tensor cores, not an array dtype")
    if not (isinstance(target_s, (int, float)) and 0 < target_s < math.inf):
        raise ValueError(f"target_s: expected a positive number of seconds, got {target_s!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats!r}")
    key = (device.platform, device.id, dtype, float(target_s), repeats)
    if key in _MEASURED:
        return _MEASURED[key]

    matmul = jax.jit(lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST))

    def operands(n):
        a_b = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
        return tuple(jax.device_put(jnp.asarray(x, dtype), device) for x in a_b)

    def seconds(a, b):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        return time.perf_counter() - start

    a, b = operands(256)
    seconds(a, b)  # compile
    rate = 2 * 256 ** 3 / max(seconds(a, b), 1e-9)
    n = round((rate * target_s / repeats / 2) ** (1 / 3) / 128) * 128
    n = min(max(n, 256), 8192)
    a, b = operands(n)
    seconds(a, b)  # compile and warm up
    best = min(seconds(a, b) for _ in range(repeats))
    peak = Peak(flops_per_s=2 * n ** 3 / best, dtype=dtype, device_kind=device.device_kind,
                platform=device.platform,
                source=f"measured: best of {repeats} jit-compiled {n}x{n} {dtype} matmuls (2n^3 FLOPs each)")
    _MEASURED[key] = peak
    return peak


def peak_flops(device=None, *, dtype: str | None = None, override: float | None = None) -> Peak | None:
    """The peak FLOP/s of ``device`` for matmuls in ``dtype``, or ``None`` if it is not known.

    Args:
        device: a ``jax.Device``; ``None`` for the default one.
        dtype: one of :data:`DTYPES`; ``None`` for :func:`matmul_dtype` of float32
            parameters on this device (what :class:`model.gpt.GPT` runs).
        override: a known peak in FLOP/s; returned as is (``source="given"``).

    Returns:
        A :class:`Peak`: ``override`` if given; on a CPU the measured float32 ceiling
        (:func:`measure_matmul_peak`; the ``dtype`` is then the operands' dtype); on
        other devices the datasheet figure (:func:`datasheet_peak`), or ``None`` for a
        device or arithmetic the table does not list.
    """
    device = _device(device)
    dtype = matmul_dtype("float32", device.platform) if dtype is None else _check_dtype(dtype)
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, (int, float)) or not 0 < override < math.inf:
            raise ValueError(f"override: expected a positive finite FLOP/s, got {override!r}")
        return Peak(flops_per_s=float(override), dtype=dtype, device_kind=device.device_kind,
                    platform=device.platform, source="given")
    if device.platform == "cpu":
        return measure_matmul_peak(device, dtype="float32" if dtype == "tf32" else dtype)
    found = datasheet_peak(device.device_kind, dtype)
    if found is None:
        return None
    flops, source = found
    return Peak(flops_per_s=flops, dtype=dtype, device_kind=device.device_kind, platform=device.platform,
                source=source)
