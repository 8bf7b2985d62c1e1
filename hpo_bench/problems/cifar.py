"""CIFAR-10 and ResNet-20: the convolutional network the pruning literature benchmarks on.

``cifar10-resnet20`` prunes ResNet-20 for CIFAR (He et al. 2016, "Deep Residual Learning for Image
Recognition", section 4.2: a 3x3 convolution, 3 stages of 3 basic blocks at 16/32/64 channels, global
average pooling, a 10-way linear layer; 0.27 M parameters) to a fixed 90% (a ShrinkBench-like point,
Blalock et al. 2020), unstructured, and searches *how* it is pruned (criterion x allocation, as
lm-bytes does) and the fine-tune (Adam: lr, 0-10 epochs, 0 being one-shot, weight decay; batch 128);
objective: accuracy. ``cifar10-resnet20-mo`` also searches the sparsity (accuracy vs sparsity).

Shortcuts are option A, as in the paper's CIFAR experiments: identity, and where the shape changes a
strided subsample with the new channels zero-padded (parameter-free, so the count is the paper's
0.27 M; fb.resnet.torch's layout: the input's channels first, the zeros after).

Data: the "CIFAR-10 python version" exactly as distributed (``cifar-10-batches-py/data_batch_1..5``
and ``test_batch``: pickled dicts whose ``data`` is a uint8 [N, 3072] array, each row the red, green
and blue 32x32 planes in row-major order, and ``labels`` a list of N ints). It is looked for under
(``data_dirs``): the ``data_dir`` option alone when given (e.g. ``problem_args = { data_dir = ... }``
in a suite); else ``$HPO_BENCH_DATA`` when set, then ``~/.cache/hpo-bench/data`` (apart from the
checkpoint cache, which never touches it). A folder may hold ``cifar-10-batches-py/`` (what
unpacking the official tarball gives; torchvision's root has the same layout) or be that folder.
Nothing is ever downloaded: without the files the factory raises a one-line ValueError naming every
place it looked and the URL of the official tarball (``CIFAR10_URL``) to fetch and unpack. The files
are read with an unpickler that only rebuilds numpy arrays, so a data file cannot run code.

Split: the training images are data_batch_1..5 in order (the first ``n_train`` of them, default all
50,000; the batches are in random order, so the first n are a random sample); validation is the
official test batch (the first ``n_val``, default all 10,000), because test accuracy is what the
literature reports (He et al.: 8.75% error for ResNet-20). A search that selects on it reports an
optimistic best value, like every paper that tunes on CIFAR's test set; ``validation="holdout"``
validates on the last 10% of the training images instead (He et al.'s 45k/5k split) and trains on
the rest.

Inputs are scaled to [0, 1] and normalized per channel with the training set's mean and standard
deviation (``MEAN``, ``STD``: fixed constants, so a subset is normalized exactly as the whole; the
common practice, where He et al. subtracted the per-pixel mean). The
usual augmentation (``CropFlip``: 4-pixel zero padding of the normalized image, a random 32x32 crop
and a random horizontal flip, fb.resnet.torch's order) applies to training batches only, pretraining
and fine-tuning; it draws from torch's global CPU generator, which the training loop seeds from
(seed, epoch), so an epoch's crops are the same whether a fine-tune started at epoch 0 or resumed
there (ARCHITECTURE.md invariant 2), and the same on every device.

Dense model: He et al.'s recipe: SGD, momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10
at 50% and 75% of the epochs (their 32k and 48k of 64k iterations), 164 epochs (64k iterations of 391
batches of 128). ``pretrain_epochs`` scales it down for a CPU smoke run. The pretraining runs on the
CPU, on one thread (evaluate/pretrained.py), unless ``pretrain_device`` names a GPU: one thread
takes about 5 minutes an epoch of 50,000 images (measured on a 2-core machine), 14 hours for the
full recipe.
"""
from __future__ import annotations

import functools
import io
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from ..space import Categorical, Float, Int, SearchSpace
from .base import Problem

__all__ = ["CIFAR10_URL", "CropFlip", "MEAN", "STD", "ResNetCifar", "cifar10_data", "cifar10_resnet20",
           "cifar10_resnet20_mo", "data_dirs", "find_cifar10", "read_batch", "resnet20"]

#: The official tarball (the "CIFAR-10 python version", 163 MB), for the user to fetch and unpack.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
#: Per-channel (R, G, B) mean and standard deviation of CIFAR-10's 50,000 training images in [0, 1].
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
VALIDATIONS = ("test", "holdout")


# ---------------------------------------------------------------------- finding and reading the data
def default_data_dir() -> Path:
    return Path.home() / ".cache" / "hpo-bench" / "data"


def data_dirs(data_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """Where the data is looked for, in order, each with what put it there: ``data_dir`` alone when
    given; else ``$HPO_BENCH_DATA`` (when set), then the default folder."""
    if data_dir is not None:
        return [(Path(data_dir).expanduser(), "data_dir")]
    out = []
    env = os.environ.get("HPO_BENCH_DATA")
    if env:
        out.append((Path(env).expanduser(), "$HPO_BENCH_DATA"))
    default = default_data_dir()
    if all(p != default for p, _ in out):
        out.append((default, "the default"))
    return out


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in (*TRAIN_FILES, TEST_FILE))


def find_cifar10(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding data_batch_1..5 and test_batch (``data_dirs``: ``DIR/cifar-10-batches-py``,
    or ``DIR`` itself); a one-line ValueError naming every place looked and how to get the data."""
    places = data_dirs(data_dir)
    for base, _ in places:
        for folder in (base / FOLDER, base):
            if _complete(folder):
                return folder
    looked = ", ".join(f"{base} ({why})" for base, why in places)
    if data_dir is None and not os.environ.get("HPO_BENCH_DATA"):
        looked += " ($HPO_BENCH_DATA is not set)"
    target = places[0][0]
    raise ValueError(
        f"CIFAR-10 not found: looked for {FOLDER}/ (data_batch_1..5, {TEST_FILE}) in {looked}. Nothing is "
        f"downloaded: fetch the python version yourself ({CIFAR10_URL}, 163 MB) and unpack it there "
        f"(mkdir -p {target} && tar -xzf cifar-10-python.tar.gz -C {target}), or point $HPO_BENCH_DATA or the "
        f"problem option data_dir at the folder that holds {FOLDER}/")


class _ArraysOnly(pickle.Unpickler):
    """Rebuilds the dicts, lists and numpy arrays of a CIFAR batch and nothing else: a pickle that
    asks for any other global is refused, so a data file cannot run code."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        if module == "numpy.core.multiarray":  # files pickled by numpy 1 (the official ones): numpy 2's home
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: its images as uint8 [N, 3, 32, 32] (channels R, G, B) and labels as int64 [N].
    The official files are Python 2 pickles (protocol 2) of a dict with byte-string keys; str keys
    (a re-pickled copy) are taken too."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = _ArraysOnly(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise ValueError(f"{path}: not a CIFAR-10 batch file ({type(e).__name__}: {e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch file (a {type(raw).__name__}, not a dict)")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in raw.items()}
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{path}: not a CIFAR-10 batch file (keys {sorted(map(str, d))}, no data/labels)")
    data, labels = np.asarray(d["data"]), np.asarray(d["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: data is {data.dtype} {list(data.shape)}, not uint8 [N, 3072]")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer) or (
            len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{path}: labels are not {len(data)} integers in 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _read_all(folder: str, stamp: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    parts = [read_batch(Path(folder) / f) for f in TRAIN_FILES]
    xt, yt = read_batch(Path(folder) / TEST_FILE)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xt, yt


def _normalize(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def cifar10_data(data_dir: str | os.PathLike | None = None, n_train: int | None = None, n_val: int | None = None,
                 validation: str = "test") -> tuple[TensorDataset, TensorDataset]:
    """(train, validation) as normalized float32 [N, 3, 32, 32] images and int64 labels (the split
    and the normalization: see the module docstring). ``n_train``/``n_val``: the first that many
    (None: all)."""
    if validation not in VALIDATIONS:
        raise ValueError(f"validation must be one of {', '.join(VALIDATIONS)}, got {validation!r}")
    folder = find_cifar10(data_dir)
    stamp = tuple((f, (folder / f).stat().st_size, (folder / f).stat().st_mtime_ns) for f in (*TRAIN_FILES, TEST_FILE))
    x, y, xt, yt = _read_all(str(folder.resolve()), stamp)
    if validation == "holdout":
        cut = len(x) - len(x) // 10
        x, y, xt, yt = x[:cut], y[:cut], x[cut:], y[cut:]
    out = []
    for images, labels, n, what in ((x, y, n_train, "n_train"), (xt, yt, n_val, "n_val")):
        n = len(images) if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(images):
            raise ValueError(f"{what} must be an integer in 1..{len(images)} ({folder}, validation={validation!r}), "
                             f"got {n!r}")
        out.append(TensorDataset(_normalize(images[:n]), torch.from_numpy(labels[:n].copy())))
    return out[0], out[1]


# ---------------------------------------------------------------------- augmentation
class CropFlip:
    """Training augmentation for a batch of images [B, C, H, W]: zero-pad ``padding`` pixels on each
    side, take a random H x W crop, and mirror it left-right with probability 1/2 (per image).

    The offsets and flips are drawn from torch's global CPU generator (which the training loop
    seeds per (seed, epoch)) and applied by indexing on the batch's device: the same crops on any
    device, nothing but a gather. Its repr is part of the problem's fingerprint."""

    def __init__(self, padding: int = 4, flip: bool = True):
        self.padding = int(padding)
        self.flip = bool(flip)

    def __repr__(self) -> str:
        return f"CropFlip(padding={self.padding}, flip={self.flip})"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.padding
        offsets = torch.randint(0, 2 * p + 1, (b, 2))
        flips = torch.rand(b) < 0.5 if self.flip else torch.zeros(b, dtype=torch.bool)
        rows = offsets[:, :1] + torch.arange(h)                                   # [B, H] in the padded image
        cols = torch.arange(w).expand(b, w)
        cols = torch.where(flips[:, None], w - 1 - cols, cols) + offsets[:, 1:]   # [B, W]
        dev = x.device
        padded = F.pad(x, (p, p, p, p))
        image = torch.arange(b, device=dev)[:, None, None, None]
        channel = torch.arange(c, device=dev)[None, :, None, None]
        return padded[image, channel, rows.to(dev)[:, None, :, None], cols.to(dev)[:, None, None, :]]


# ---------------------------------------------------------------------- the model
class ShortcutA(nn.Module):
    """He et al.'s option A: identity; where a block halves the resolution and widens, take every
    ``stride``-th pixel and append zero channels (no parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, planes - in_planes

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = ShortcutA(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs (He et al. 2016, section 4.2); n = 3 is ResNet-20. Convolutions
    are initialized as in He et al. 2015 (normal, std sqrt(2 / (k*k*out_channels)), fb.resnet.torch),
    batch norm to (1, 0)."""

    def __init__(self, n: int = 3, widths: Sequence[int] = (16, 32, 64), num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks: list[nn.Module] = []
        in_planes = widths[0]
        for i, planes in enumerate(widths):
            for j in range(n):
                blocks.append(BasicBlock(in_planes, planes, 2 if i > 0 and j == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))  # global average pooling (a mean: its CUDA backward is deterministic)


def resnet20() -> ResNetCifar:
    return ResNetCifar(3)


# ---------------------------------------------------------------------- the problems
_HOW = {
    "criterion": Categorical(["magnitude", "wanda", "taylor"]),
    "allocation": Categorical(["global", "uniform", "erk", "owl"]),
}
_FINETUNE = {
    "lr": Float(1e-5, 1e-2, log=True),
    "epochs": Int(0, 10),
    "weight_decay": Float(1e-6, 1e-2, log=True),
}
# What a user would try first: global magnitude pruning, Adam's default lr, two epochs, He's decay.
_DEFAULT = {"criterion": "magnitude", "allocation": "global", "lr": 1e-3, "epochs": 2, "weight_decay": 1e-4}
#: He et al. 2016, section 4.2 (see the module docstring); ``epochs`` is the problem option.
PRETRAIN = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 128,
            "lr_milestones": [0.5, 0.75], "lr_gamma": 0.1, "seed": 0}


def _cifar(name: str, objectives: tuple[str, ...], space: dict, fixed: dict, description: str,
           data_dir: str | None, n_train: int | None, n_val: int | None, validation: str,
           pretrain_epochs: int, pretrain_device: str) -> Problem:
    if isinstance(pretrain_epochs, bool) or not isinstance(pretrain_epochs, int) or pretrain_epochs < 1:
        raise ValueError(f"{name}: pretrain_epochs must be an integer >= 1, got {pretrain_epochs!r}")
    if not isinstance(pretrain_device, str) or not (pretrain_device == "cpu" or pretrain_device.startswith("cuda")):
        raise ValueError(f"{name}: pretrain_device must be cpu, cuda or cuda:N, got {pretrain_device!r}")
    train, val = cifar10_data(data_dir, n_train, n_val, validation)
    recipe = {**PRETRAIN, "epochs": pretrain_epochs}
    if pretrain_device != "cpu":  # (a GPU-trained dense model is another problem: in the fingerprint)
        recipe["device"] = pretrain_device
    where = "test batch" if validation == "test" else "held-out training images"
    return Problem(
        name=name,
        model=resnet20,
        train=train,
        val=val,
        space=SearchSpace(space),
        objectives=objectives,
        fixed={"pattern": "unstructured", "batch_size": 128, **fixed},
        default_config={k: v for k, v in _DEFAULT.items() if k in space},
        pretrain=recipe,
        description=f"{description} ({len(train)} training images, {len(val)} validation from the {where})",
        augment=CropFlip(4),
    )


def cifar10_resnet20(data_dir: str | None = None, n_train: int | None = None, n_val: int | None = None,
                     validation: str = "test", pretrain_epochs: int = 164, pretrain_device: str = "cpu") -> Problem:
    """``cifar10-resnet20``: ResNet-20 pruned to a fixed 90%, unstructured: search the criterion, the
    allocation across layers and the fine-tune (0-10 epochs: 0 is one-shot); maximize accuracy.

    The pattern is fixed: at a fixed sparsity N:M patterns fix their own (2:4 is 50%) and block
    patterns take only the global allocation, so neither crosses with the allocation."""
    return _cifar("cifar10-resnet20", ("accuracy",), {**_HOW, **_FINETUNE}, {"sparsity": 0.9},
                  "ResNet-20 on CIFAR-10 pruned to 90%: criterion x allocation x fine-tune; maximize accuracy",
                  data_dir, n_train, n_val, validation, pretrain_epochs, pretrain_device)


def cifar10_resnet20_mo(data_dir: str | None = None, n_train: int | None = None, n_val: int | None = None,
                        validation: str = "test", pretrain_epochs: int = 164, pretrain_device: str = "cpu") -> Problem:
    """``cifar10-resnet20-mo``: also search the sparsity (0.5-0.98): accuracy vs sparsity (Pareto)."""
    space = {"sparsity": Float(0.5, 0.98, step=0.01), **_HOW, **_FINETUNE}
    return _cifar("cifar10-resnet20-mo", ("accuracy", "sparsity"), space, {},
                  "ResNet-20 on CIFAR-10: accuracy vs sparsity (Pareto front)",
                  data_dir, n_train, n_val, validation, pretrain_epochs, pretrain_device)
