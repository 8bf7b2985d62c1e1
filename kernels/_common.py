"""What every magnitude kernel shares: the key format, the chunk table, the device round trip.

Why one module: the select, apply and N:M kernels all read weights the same way. A weight's
*key* is its bit pattern with the sign cleared; for non-negative IEEE floats the integer order of
the bits is the order of the magnitudes (-0.0 -> key 0, +-inf -> the largest non-NaN key, NaN ->
above it). Selection and pruning then work on integers only: exact, and free of float compares.

A list of tensors is described to a kernel by one *chunk table* (int64 rows
``[weight address, length, mask address, global chunk index]``, one row per <= CHUNK elements of
one tensor, rows in tensor order then position order), so one launch covers all tensors without a
concatenated copy and without one launch per tensor. Lists that mix dtypes use fp32-space keys
(16-bit values are widened exactly) and one launch per dtype.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import torch
import triton
import triton.language as tl

SRC_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
INF_KEY16 = {torch.float16: 0x7C00, torch.bfloat16: 0x7F80}
INF_KEY32 = 0x7F800000


_INTERPRETING = os.environ.get("TRITON_INTERPRET", "") == "1"


def interpreting() -> bool:
    """Whether the kernels run under Triton's interpreter: read once, as Triton reads it when the
    kernels below are defined (@triton.jit), which is what decides how they run."""
    return _INTERPRETING


def kernel_device() -> torch.device:
    """Where the kernels run: host memory under the interpreter, else the current CUDA device."""
    return torch.device("cpu") if interpreting() else torch.device("cuda", torch.cuda.current_device())


def cdiv(a: int, b: int) -> int:
    """Ceiling division on the host. (``triton.cdiv`` is a constexpr function there: ~10 µs a
    call on the launch path of a kernel whose GPU time is a few µs.)"""
    return -(-a // b)


def next_pow2(n: int) -> int:
    """``triton.next_power_of_2`` on the host without its constexpr-function call cost."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


@functools.lru_cache(maxsize=None)
def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (4 under the interpreter or off CUDA: a few programs
    are enough there to cross every boundary). Cached: it sits on every launch's path."""
    if interpreting() or device.type != "cuda":
        return 4
    return torch.cuda.get_device_properties(device).multi_processor_count


def check_linear_dtypes(x2: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None) -> None:
    """The sparse kernels multiply in x's dtype: a weight (or bias) of another dtype is an error,
    as in F.linear, not a silent cast (tl.dot rejects mixed operands when compiled)."""
    if values.dtype != x2.dtype or (bias is not None and bias.dtype != x2.dtype):
        raise ValueError(f"x is {x2.dtype} but the weight is {values.dtype}"
                         + ("" if bias is None else f" and the bias {bias.dtype}") + ": cast one to the other")


def bsr_operands(x2: torch.Tensor, sw, bias: torch.Tensor | None):
    """What both BSR launchers (bsr.py, skinny.py) start with: x with contiguous rows, the output
    [M, out] allocated in x's dtype, and the weight's (crow, col, values) with the dtypes checked;
    ``None`` for those when the product is empty (the output is then returned as it is)."""
    assert sw.format == "bsr" and sw.block is not None
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    y = torch.empty((x2.shape[0], sw.shape[0]), dtype=x2.dtype, device=x2.device)
    if y.numel() == 0:
        return x2, y, None
    crow, col, values = sw.data["crow"], sw.data["col"], sw.data["values"]
    check_linear_dtypes(x2, values, bias)
    return x2, y, (crow, col, values)


def dot_flags(x2: torch.Tensor) -> tuple[str, bool]:
    """(PRECISION, UPCAST) of the BSR kernels: tl.dot's input precision for x's dtype (IEEE for
    float32 unless TF32 is allowed), and whether to upcast bf16 tiles (the interpreter only: its
    bf16 tl.dot is wrong, triton 3.9)."""
    ieee = x2.dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32
    return ("ieee" if ieee else "tf32"), _INTERPRETING and x2.dtype == torch.bfloat16


def _fast_histogram() -> bool:
    # Triton < 3.7 lowers tl.histogram with warp ballots: cost grows with the bin count, so fewer
    # bits per pass (more passes) win there. 3.7+ uses one shared-memory atomic per element.
    major, minor = (int(x) for x in triton.__version__.split(".")[:2])
    return (major, minor) >= (3, 7)


def radix_plan(key_bits: int) -> list[tuple[int, int]]:
    """(shift, bits) of each radix pass, most significant digit first, e.g. 31 bits at most 11 per
    pass -> 11, 10, 10. ``HPO_BENCH_TRITON_RADIX_BITS`` overrides the per-pass maximum."""
    most = int(os.environ.get("HPO_BENCH_TRITON_RADIX_BITS", "0")) or (11 if _fast_histogram() else 8)
    passes = -(-key_bits // most)
    widths = [key_bits // passes + (1 if i < key_bits % passes else 0) for i in range(passes)]
    plan, shift = [], key_bits
    for w in widths:
        shift -= w
        plan.append((shift, w))
    return plan


@dataclass(frozen=True)
class KeySpec:
    """How one dtype group turns into keys: its source code, whether keys live in fp32 space,
    the key of +inf (keys above it are NaN) and the number of key bits."""

    src: int
    key32: bool
    inf_key: int
    key_bits: int


def key_spec(dtype: torch.dtype, key32: bool) -> KeySpec:
    if key32 or dtype == torch.float32:
        return KeySpec(SRC_CODE[dtype], True, INF_KEY32, 31)
    return KeySpec(SRC_CODE[dtype], False, INF_KEY16[dtype], 15)


def key_to_float(key: int, spec: KeySpec, dtype: torch.dtype) -> float:
    """The magnitude a key stands for."""
    if spec.key32:
        return float(np.array([key], dtype=np.uint32).view(np.float32)[0])
    bits = torch.tensor([key], dtype=torch.int16)
    return float(bits.view(dtype).float()[0])


@triton.jit
def load_keys(base, offs, valid, SRC: tl.constexpr, KEY32: tl.constexpr, MASKED: tl.constexpr,
              ALIGNED: tl.constexpr):
    """Keys (int32, sign cleared) of the weights at ``base + offs``; ``base`` is a raw address."""
    if SRC == 0:
        p = base.to(tl.pointer_type(tl.int32))
    elif SRC == 1 and KEY32:
        p = base.to(tl.pointer_type(tl.float16))
    else:
        p = base.to(tl.pointer_type(tl.int16))
    if ALIGNED:  # lets the compiler emit 16-byte vector loads (host checked the alignment)
        p = tl.multiple_of(p, 16)
    if MASKED:
        x = tl.load(p + offs, mask=valid, other=0)
    else:
        x = tl.load(p + offs)
    if SRC == 0:
        key = x & 0x7FFFFFFF
    elif SRC == 1 and KEY32:
        key = x.to(tl.float32).to(tl.int32, bitcast=True) & 0x7FFFFFFF
    elif KEY32:  # bf16 is the top half of an fp32
        key = (x.to(tl.int32) & 0x7FFF) << 16
    else:
        key = x.to(tl.int32) & 0x7FFF
    return key


@triton.jit
def zero_at(base, offs, valid, SRC: tl.constexpr, KEY32: tl.constexpr):
    """Write +0.0 into the weights at ``base + offs`` where ``valid``."""
    if SRC == 0:
        p = base.to(tl.pointer_type(tl.int32))
        tl.store(p + offs, tl.zeros(offs.shape, tl.int32), mask=valid)
    else:
        p = base.to(tl.pointer_type(tl.int16))
        tl.store(p + offs, tl.zeros(offs.shape, tl.int16), mask=valid)


@dataclass
class Group:
    """The rows of one dtype in the device buffer."""

    spec: KeySpec
    table: torch.Tensor  # (rows, 4) int64 view into Batch.buffer
    rows: int
    aligned: bool


@dataclass
class Batch:
    """A list of tensors described for the kernels: chunk tables and a small selection state, all
    in one device buffer (one host-to-device copy)."""

    groups: list[Group]
    state: torch.Tensor  # int64[4]: prefix, k remaining, count in the chosen bin, NaN count
    n_rows: int
    total: int
    chunk: int


BLOCK = 4096  # elements per loop step of one program (tests shrink it to cross boundaries)
CHUNK: int | None = None  # elements per program; None: chosen by chunk_size (tests set it)


def chunk_size(total: int) -> int:
    """Elements per program: a few programs per SM on a GPU, few large ones in the interpreter."""
    if CHUNK is not None:
        return CHUNK
    if interpreting():
        return 1 << 16
    sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    target = max(1, total // (sms * 8))
    return int(min(1 << 18, max(1 << 13, triton.next_power_of_2(target))))


def make_batch(tensors: list[torch.Tensor], masks: list[torch.Tensor] | None, k: int) -> Batch:
    total = sum(t.numel() for t in tensors)
    chunk = chunk_size(total)
    key32 = len({t.dtype for t in tensors}) > 1
    per_dtype: dict[torch.dtype, list[np.ndarray]] = {}
    gidx = 0
    for i, t in enumerate(tensors):
        n = t.numel()
        if n == 0:
            continue
        starts = np.arange(0, n, chunk, dtype=np.int64)
        rows = np.empty((len(starts), 4), dtype=np.int64)
        rows[:, 0] = t.data_ptr() + starts * t.element_size()
        rows[:, 1] = np.minimum(chunk, n - starts)
        rows[:, 2] = (masks[i].data_ptr() + starts) if masks is not None else 0
        rows[:, 3] = np.arange(gidx, gidx + len(starts))
        gidx += len(starts)
        per_dtype.setdefault(t.dtype, []).append(rows)
    parts, layout = [], []
    for dtype, chunks in per_dtype.items():
        rows = np.concatenate(chunks)
        aligned = bool((rows[:, 0] % 16 == 0).all() and (rows[:, 2] % 16 == 0).all())
        aligned = aligned and os.environ.get("HPO_BENCH_TRITON_NO_HINTS", "") != "1"
        layout.append((key_spec(dtype, key32), len(rows), aligned))
        parts.append(rows.reshape(-1))
    state = np.array([0, k, 0, 0], dtype=np.int64)
    host = np.concatenate(parts + [state]) if parts else state
    buf = torch.from_numpy(host).to(kernel_device())
    groups, off = [], 0
    for spec, n_rows, aligned in layout:
        groups.append(Group(spec, buf[off : off + 4 * n_rows].view(n_rows, 4), n_rows, aligned))
        off += 4 * n_rows
    return Batch(groups, buf[off:], gidx, total, chunk)


def to_kernel_device(tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], bool]:
    """The tensors where the kernels can read them; True if they had to be copied there (CPU
    tensors on a CUDA machine, CUDA tensors under the interpreter). Callers copy results back."""
    dev = kernel_device()
    if all(t.device == dev for t in tensors):
        return tensors, False
    return [t.detach().to(dev) for t in tensors], True
