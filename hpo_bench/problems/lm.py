"""A small GPT-style language model, pruned as the LLM literature prunes its big ones.

``lm-bytes`` is a byte-level, pre-norm, causal decoder (2 layers, width 128, 4 heads, context 64:
0.46 M parameters) pretrained once on a corpus that exists on every machine without a download:
the source text of a fixed list of Python standard-library modules (``CORPUS_MODULES``), read from
the interpreter that runs it (so the corpus, and with it the problem's fingerprint, is that of the
Python version: results are never shared across versions by mistake). ``data_file`` names any UTF-8
text file instead. The first 90% of the bytes train, the last 10% validate, cut into windows of
``context + 1`` bytes (the stdlib corpus on Python 3.11: about 13,800 training windows of 65 bytes).

Objective: validation loss (mean next-byte cross-entropy, nats; minimize; perplexity is its exp).
One fine-tuning "epoch" is a fixed number of optimizer steps: ``epoch_windows / batch`` =
1024 / 16 = 64 steps of 16 windows drawn afresh from all the training windows in every epoch
(``Problem.epoch_samples``; the batch is fixed, not searched, so an epoch's cost is too), about 3 s
on one core here. Pretraining is 30 such epochs: 30,720 windows, about two passes over the corpus.
(An earlier version trained every epoch on the same 1,024 windows: the dense model memorised them,
its validation loss rose to 4.45 nats after falling to 2.2, and pruning then *helped*: a benchmark
of nothing.) ``epochs`` = 0 scores the pruned model without fine-tuning
(one-shot pruning, the LLM practice) where the evaluator allows it.

Prunable: every Linear inside the blocks (attention's qkv and output projections, the MLP), as in
Wanda and SparseGPT; the embedding, the output head and the norms stay dense.
"""
from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from ..space import Categorical, Float, Int, SearchSpace
from .base import Problem

__all__ = ["CORPUS_MODULES", "TinyGPT", "block_linear", "lm_bytes", "lm_bytes_mo", "lm_corpus", "lm_windows"]

#: The corpus: these standard-library modules' source, concatenated in this order (about 0.9 MB).
CORPUS_MODULES = (
    "argparse.py", "ast.py", "collections/__init__.py", "dataclasses.py", "datetime.py", "decimal.py",
    "difflib.py", "enum.py", "fractions.py", "functools.py", "inspect.py", "json/decoder.py",
    "json/encoder.py", "logging/__init__.py", "pathlib.py", "pickle.py", "statistics.py", "string.py",
    "textwrap.py", "typing.py",
)


def lm_corpus(data_file: str | None = None) -> bytes:
    """The training text: ``data_file``'s bytes, or the standard-library modules above."""
    if data_file is not None:
        path = Path(data_file)
        if not path.is_file():
            raise ValueError(f"data_file {data_file!r} does not exist or is not a file")
        data = path.read_bytes()
    else:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        missing = [m for m in CORPUS_MODULES if not (stdlib / m).is_file()]
        if missing:
            raise ValueError(f"lm corpus: {', '.join(missing)} not found under {stdlib} (give data_file instead)")
        data = b"".join((stdlib / m).read_bytes() for m in CORPUS_MODULES)
    return data


def lm_windows(data: bytes, context: int, n_train: int | None, n_val: int) -> tuple[TensorDataset, TensorDataset]:
    """Non-overlapping windows of ``context + 1`` bytes: (input, next bytes) pairs; the first 90%
    of the text gives the training windows (``n_train`` of them evenly spaced, None: all), the rest
    the validation ones (``n_val``, evenly spaced)."""
    size = context + 1
    split = int(len(data) * 0.9)
    out = []
    for part, n, name in ((data[:split], n_train, "training"), (data[split:], n_val, "validation")):
        count = len(part) // size
        n = count if n is None else n
        if count < n or n < 1:
            raise ValueError(f"lm corpus: {len(data)} bytes give {count} {name} windows of {size}, {n} needed "
                             "(give a larger data_file)")
        starts = torch.linspace(0, (count - 1) * size, n).long() // size * size
        buf = torch.frombuffer(bytearray(part), dtype=torch.uint8).long()
        seqs = torch.stack([buf[s: s + size] for s in starts.tolist()])
        out.append(TensorDataset(seqs[:, :-1].contiguous(), seqs[:, 1:].contiguous()))
    return out[0], out[1]


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Head(nn.Linear):
    """The output projection (a Linear the pruning leaves dense, as Wanda and SparseGPT do)."""


class TinyGPT(nn.Module):
    """Byte-level decoder. ``forward`` returns logits as (batch, vocab, time), the layout
    ``F.cross_entropy`` takes with (batch, time) targets, so the shared training loop needs no
    special case."""

    def __init__(self, vocab: int = 256, width: int = 128, depth: int = 2, heads: int = 4, context: int = 64) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.ln = nn.LayerNorm(width)
        self.head = Head(width, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x)).transpose(1, 2)


def block_linear(m: nn.Module) -> bool:
    """``prunable`` for the LM: the Linear layers of the blocks; the output head stays dense."""
    return isinstance(m, nn.Linear) and not isinstance(m, Head)


_FINETUNE = {
    "lr": Float(1e-5, 3e-3, log=True),
    "epochs": Int(0, 4),
    "weight_decay": Float(1e-6, 1e-1, log=True),
}
#: How to prune, as the LLM literature searches it: the criterion (magnitude; Wanda; first-order
#: Taylor), the allocation across layers (compression/allocation.py) and unstructured or 2:4 (an N:M
#: pattern takes the criterion's score in each group and ignores the allocation).
_HOW = {
    "pattern": Categorical(["unstructured", "2:4"]),
    "criterion": Categorical(["magnitude", "wanda", "taylor"]),
    "allocation": Categorical(["global", "uniform", "erk", "owl"]),
}
_DEFAULT = {"pattern": "unstructured", "criterion": "magnitude", "allocation": "global", "lr": 3e-4, "epochs": 1,
            "weight_decay": 1e-2}


def _lm(name: str, objectives: tuple[str, ...], space: dict, fixed: dict, description: str,
        data_file: str | None, width: int, depth: int, heads: int, context: int, n_train: int | None, n_val: int,
        batch_size: int, pretrain_epochs: int, epoch_windows: int, pretrain_device: str) -> Problem:
    for k, v in {"width": width, "depth": depth, "heads": heads, "context": context, "n_train": n_train,
                 "n_val": n_val, "batch_size": batch_size, "pretrain_epochs": pretrain_epochs,
                 "epoch_windows": epoch_windows}.items():
        if (v is not None or k != "n_train") and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name}: {k} must be an integer >= 1, got {v!r}")
    if width % heads:
        raise ValueError(f"{name}: width {width} is not a multiple of heads {heads}")
    train, val = lm_windows(lm_corpus(data_file), context, n_train, n_val)
    corpus = "stdlib" if data_file is None else hashlib.sha256(Path(data_file).read_bytes()).hexdigest()[:12]
    recipe = {"epochs": pretrain_epochs, "lr": 1e-3, "batch_size": batch_size, "seed": 0}
    if pretrain_device != "cpu":  # a larger model pretrains on a GPU (the device enters the fingerprint)
        recipe["device"] = pretrain_device
    return Problem(
        name=name,
        model=lambda: TinyGPT(256, width, depth, heads, context),
        train=train,
        val=val,
        space=SearchSpace(space),
        objectives=objectives,
        fixed={"batch_size": batch_size, **fixed},
        default_config={k: v for k, v in _DEFAULT.items() if k in space},
        pretrain=recipe,
        prunable=block_linear,
        description=f"{description} (corpus {corpus}: {len(train)} training windows of {context} bytes, "
                    f"{min(epoch_windows, len(train))} per epoch)",
        task="language_model",
        epoch_samples=min(epoch_windows, len(train)),
    )


def lm_bytes(data_file: str | None = None, width: int = 128, depth: int = 2, heads: int = 4, context: int = 64,
             n_train: int | None = None, n_val: int = 256, batch_size: int = 16, pretrain_epochs: int = 30,
             epoch_windows: int = 1024, pretrain_device: str = "cpu") -> Problem:
    """``lm-bytes``: pruned to a fixed 60%, search how to prune (pattern, criterion, allocation)
    and the fine-tune (0-4 epochs: 0 is one-shot); minimize the validation loss."""
    return _lm("lm-bytes", ("val_loss",), {**_HOW, **_FINETUNE}, {"sparsity": 0.6},
               "byte-level GPT (2x128) on stdlib source, pruned to 60%: criterion x allocation x fine-tune; minimize validation loss", data_file,
               width, depth, heads, context, n_train, n_val, batch_size, pretrain_epochs, epoch_windows,
               pretrain_device)


def lm_bytes_mo(data_file: str | None = None, width: int = 128, depth: int = 2, heads: int = 4, context: int = 64,
                n_train: int | None = None, n_val: int = 256, batch_size: int = 16, pretrain_epochs: int = 30,
                epoch_windows: int = 1024, pretrain_device: str = "cpu") -> Problem:
    """``lm-bytes-mo``: also search the sparsity (0.3-0.9): validation loss vs sparsity (Pareto)."""
    space = {"sparsity": Float(0.3, 0.9, step=0.05), **{k: v for k, v in _HOW.items() if k != "pattern"},
             **_FINETUNE}
    return _lm("lm-bytes-mo", ("val_loss", "sparsity"), space, {},
               "byte-level GPT on stdlib source: validation loss vs sparsity (Pareto front)", data_file,
               width, depth, heads, context, n_train, n_val, batch_size, pretrain_epochs, epoch_windows,
               pretrain_device)
