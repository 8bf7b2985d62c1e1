"""CIFAR-10 ResNet-20 (problems/cifar.py): the data read from the official on-disk format, where it is
looked for and what is said when it is not there, the model, the augmentation, the pretraining recipe,
and that pruning + fine-tuning is deterministic and resumes exactly from the cache.

The data is a tiny dataset written in exactly the official layout (the "CIFAR-10 python version":
cifar-10-batches-py/data_batch_1..5 and test_batch, Python 2 cPickle protocol-2 pickles of dicts
with byte-string keys, ``data`` a numpy uint8 [N, 3072] array of R, G, B planes, ``labels`` a list
of ints), pickled with Python 2's opcodes for strings and numpy 1's module names (``Py2Pickler``), as
the official files are: 5 x 32 training images and 48 test images, so each test takes seconds."""
from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hpo_bench.evaluate import CachingEvaluator, CheckpointStore, Evaluator
from hpo_bench.evaluate.pretrained import pretrain_dense, recipe_lr
from hpo_bench.evaluate.training import epoch_seed, train_epoch
from hpo_bench.problems import PROBLEMS, get_problem
from hpo_bench.problems.cifar import (CIFAR10_URL, MEAN, STD, CropFlip, ShortcutA, cifar10_data, find_cifar10,
                                      read_batch, resnet20)

ROOT = Path(__file__).resolve().parent.parent
PER_BATCH, N_TEST = 32, 48
NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Py2Pickler(pickle._Pickler):
    """What Python 2's cPickle wrote for the official files at protocol 2: every string (a Python 2
    str is bytes) as a STRING opcode, numpy's functions under numpy 1's module ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj if len(obj) < 256
                   else pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes], dispatch[str], dispatch[type] = save_bytes, save_str, save_global


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_cifar(root: Path, per_batch: int = PER_BATCH, n_test: int = N_TEST, seed: int = 0) -> dict:
    """Random images in the official layout under ``root/cifar-10-batches-py``; returns what was written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        label = (f"training batch {i + 1} of 5" if name != "test_batch" else "testing batch 1 of 1").encode()
        batch = {b"batch_label": label, b"labels": labels, b"data": data,
                 b"filenames": [f"{NAMES[c]}_s_{i:02d}{j:04d}.png".encode() for j, c in enumerate(labels)]}
        (folder / name).write_bytes(py2_pickle(batch))
        written[name] = batch
    (folder / "batches.meta").write_bytes(py2_pickle({b"num_cases_per_batch": per_batch, b"num_vis": 3072,
                                                      b"label_names": [n.encode() for n in NAMES]}))
    return written


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """ResNet-20 on batches of 32 images: one thread is 3x faster than two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    return root, write_cifar(root)


@pytest.fixture(scope="module")
def cifar(data_root):
    return get_problem("cifar10-resnet20", data_dir=str(data_root[0]), pretrain_epochs=2)


# ---------------------------------------------------------------------- the data
def test_reads_the_official_format_end_to_end(data_root):
    root, written = data_root
    raw = (root / "cifar-10-batches-py" / "data_batch_2").read_bytes()
    assert raw[:2] == b"\x80\x02" and b"cnumpy.core.multiarray\n_reconstruct\n" in raw  # as the official files
    images, labels = read_batch(root / "cifar-10-batches-py" / "data_batch_2")
    assert images.dtype == np.uint8 and images.shape == (PER_BATCH, 3, 32, 32) and labels.dtype == np.int64
    train, val = cifar10_data(root)
    x, y = train.tensors
    assert x.dtype == torch.float32 and x.shape == (5 * PER_BATCH, 3, 32, 32)
    assert y.dtype == torch.int64 and val.tensors[0].shape == (N_TEST, 3, 32, 32)
    every = [lab for b in range(1, 6) for lab in written[f"data_batch_{b}"][b"labels"]]
    assert y.tolist() == every  # the five batches in order
    assert torch.bincount(y, minlength=10).tolist() == np.bincount(every, minlength=10).tolist()
    assert val.tensors[1].tolist() == written["test_batch"][b"labels"]
    # one pixel end to end: image 3 of data_batch_2, row 5, column 7; each plane is 1024 bytes, row-major
    row = written["data_batch_2"][b"data"][3]
    for c in range(3):
        byte = int(row[c * 1024 + 5 * 32 + 7])
        expected = (byte / 255.0 - MEAN[c]) / STD[c]
        assert float(x[PER_BATCH + 3, c, 5, 7]) == pytest.approx(expected, abs=1e-5)
    # normalization: the training set's constants, so random bytes are not centred on 0 but close
    assert abs(float(x.mean())) < 0.5


def test_subsets_and_the_holdout_split(data_root):
    root, written = data_root
    train, val = cifar10_data(root, n_train=40, n_val=10)
    assert len(train) == 40 and len(val) == 10
    assert train.tensors[1].tolist() == (written["data_batch_1"][b"labels"] + written["data_batch_2"][b"labels"])[:40]
    htrain, hval = cifar10_data(root, validation="holdout")
    cut = 5 * PER_BATCH - (5 * PER_BATCH) // 10  # the last 10% of the training images validate
    assert len(htrain) == cut and len(hval) == 5 * PER_BATCH - cut
    assert torch.equal(hval.tensors[0], cifar10_data(root)[0].tensors[0][cut:])
    with pytest.raises(ValueError, match=r"n_train must be an integer in 1\.\.160"):
        cifar10_data(root, n_train=1000)
    with pytest.raises(ValueError, match="validation must be one of test, holdout"):
        cifar10_data(root, validation="val")


def test_where_the_data_is_looked_for(data_root, tmp_path, monkeypatch):
    root, _ = data_root
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HPO_BENCH_DATA", raising=False)
    folder = root / "cifar-10-batches-py"
    assert find_cifar10(root) == folder and find_cifar10(folder) == folder  # the parent, or the folder itself
    monkeypatch.setenv("HPO_BENCH_DATA", str(root))
    assert find_cifar10() == folder
    monkeypatch.delenv("HPO_BENCH_DATA")
    default = tmp_path / "home" / ".cache" / "hpo-bench" / "data"
    default.mkdir(parents=True)
    (default / "cifar-10-batches-py").symlink_to(folder)
    assert find_cifar10() == default / "cifar-10-batches-py"


def test_missing_data_is_one_line_naming_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HPO_BENCH_DATA", str(tmp_path / "env"))
    with pytest.raises(ValueError) as e:
        get_problem("cifar10-resnet20")
    msg = str(e.value)
    assert "\n" not in msg and CIFAR10_URL in msg and "cifar-10-batches-py" in msg and "Nothing is downloaded" in msg
    assert f"{tmp_path / 'env'} ($HPO_BENCH_DATA)" in msg
    assert f"{tmp_path / 'home' / '.cache' / 'hpo-bench' / 'data'} (the default)" in msg
    with pytest.raises(ValueError) as e:  # an explicit data_dir is the only place looked
        get_problem("cifar10-resnet20", data_dir=str(tmp_path / "mine"))
    assert f"{tmp_path / 'mine'} (data_dir)" in str(e.value) and "$HPO_BENCH_DATA)" not in str(e.value)
    # an incomplete folder is not the data
    write_cifar(tmp_path / "partial")
    (tmp_path / "partial" / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(ValueError, match="CIFAR-10 not found"):
        find_cifar10(tmp_path / "partial")


def test_the_cli_says_so_in_one_line_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HPO_BENCH_DATA"}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "hpo_bench.cli", "run", "--problem", "cifar10-resnet20"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("hpo-bench: error: CIFAR-10 not found") and CIFAR10_URL in r.stderr
    r = subprocess.run([sys.executable, "-m", "hpo_bench.cli", "problems"], capture_output=True, text=True,
                       cwd=tmp_path, env=env)
    assert r.returncode == 0 and "cifar10-resnet20" in r.stdout and "unavailable: CIFAR-10 not found" in r.stdout


def test_a_data_file_that_is_not_a_batch_is_refused_without_running_it(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="not a CIFAR-10 batch file"):
        read_batch(bad)
    assert not (tmp_path / "pwned").exists()
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match=r"not uint8 \[N, 3072\]"):
        read_batch(bad)
    # a copy re-pickled with str keys (Python 3 style) reads the same
    good = tmp_path / "test_batch"
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    good.write_bytes(pickle.dumps({"data": data, "labels": [3, 4]}))
    images, labels = read_batch(good)
    assert labels.tolist() == [3, 4] and images[1, 2, 0, 0] == data[1, 2048]


# ---------------------------------------------------------------------- the model
def test_resnet20_is_the_papers():
    m = resnet20()
    n = sum(p.numel() for p in m.parameters())
    assert n == 269_722 and round(n / 1e6, 2) == 0.27  # He et al.: 0.27 M
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert len(convs) == 19 and [c.out_channels for c in convs[1::6]] == [16, 32, 64]  # 1 + 3 stages x 3 blocks x 2
    shortcuts = [mod for mod in m.modules() if isinstance(mod, ShortcutA)]
    assert len(shortcuts) == 9 and sum(p.numel() for s in shortcuts for p in s.parameters()) == 0  # option A
    assert m(torch.randn(5, 3, 32, 32)).shape == (5, 10)
    # option A: a strided subsample, then zero channels appended
    s = ShortcutA(16, 32, 2)
    x = torch.randn(2, 16, 8, 8)
    out = s(x)
    assert out.shape == (2, 32, 4, 4) and torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()


# ---------------------------------------------------------------------- augmentation
def test_augmentation_is_a_padded_crop_or_its_mirror():
    torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32)
    out = CropFlip(4)(x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    seen = set()
    for i in range(len(x)):
        hits = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(padded[i, :, dy:dy + 32, dx:dx + 32]))]
        assert hits, f"image {i} is not a crop of its padded self"
        seen.update(hits)
    assert {f for *_, f in seen} == {False, True} and len({(dy, dx) for dy, dx, _ in seen}) > 10


def test_augmentation_is_deterministic_per_seed_and_epoch():
    x = torch.randn(16, 3, 32, 32)
    aug = CropFlip(4)

    def at(seed, epoch):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(epoch_seed(seed, epoch))
            return aug(x)

    assert torch.equal(at(0, 3), at(0, 3))
    assert not torch.equal(at(0, 3), at(0, 4)) and not torch.equal(at(0, 3), at(1, 3))
    # and through the training loop: an epoch's batches depend on (seed, epoch) only, and the
    # caller's random state is left as it was
    seen = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    data = (x, torch.zeros(16, dtype=torch.long))

    def recording(batch):
        out = aug(batch)
        seen.append(out)
        return out

    state = torch.random.get_rng_state()
    for epoch in (0, 1, 0):
        train_epoch(model, data, opt, batch_size=16, seed=7, epoch=epoch, augment=recording)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(seen[0], seen[2]) and not torch.equal(seen[0], seen[1])


# ---------------------------------------------------------------------- pretraining and the problem
def test_the_pretrain_recipe_is_he_et_al():
    p = PROBLEMS["cifar10-resnet20"]
    import inspect

    assert inspect.signature(p).parameters["pretrain_epochs"].default == 164
    recipe = {"lr": 0.1, "lr_milestones": [0.5, 0.75], "lr_gamma": 0.1}
    lrs = [recipe_lr(recipe, e, 164) for e in range(164)]
    assert lrs[81] == 0.1 and lrs[82] == pytest.approx(0.01) and lrs[122] == pytest.approx(0.01)
    assert lrs[123] == pytest.approx(0.001) and lrs[163] == pytest.approx(0.001)  # 32k/48k of 64k iterations
    assert recipe_lr({"lr": 3e-3}, 10, 20) == 3e-3  # no schedule: constant, as before


def test_the_problem(cifar, data_root):
    root = str(data_root[0])
    assert cifar.objectives == ("accuracy",)
    assert cifar.fixed == {"pattern": "unstructured", "batch_size": 128, "sparsity": 0.9}
    assert set(cifar.space) == {"criterion", "allocation", "lr", "epochs", "weight_decay"}
    assert cifar.space["epochs"].low == 0 and cifar.baseline_config()["epochs"] == 2
    assert {k: cifar.pretrain[k] for k in ("optimizer", "lr", "momentum", "weight_decay", "batch_size")} == {
        "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 128}
    assert "device" not in cifar.pretrain and repr(cifar.augment) == "CropFlip(padding=4, flip=True)"
    mo = get_problem("cifar10-resnet20-mo", data_dir=root)
    assert mo.objectives == ("accuracy", "sparsity") and "sparsity" in mo.space and "sparsity" not in mo.fixed
    # what changes a result is in the fingerprint: the augmentation, the recipe, the data
    same = get_problem("cifar10-resnet20", data_dir=root, pretrain_epochs=2)
    assert same.fingerprint() == cifar.fingerprint()
    same.augment, same._fingerprint = None, None
    assert same.fingerprint() != cifar.fingerprint()
    assert get_problem("cifar10-resnet20", data_dir=root, pretrain_epochs=3).fingerprint() != cifar.fingerprint()
    assert get_problem("cifar10-resnet20", data_dir=root, pretrain_epochs=2, n_train=150).fingerprint() != \
        cifar.fingerprint()
    with pytest.raises(ValueError, match="pretrain_epochs must be an integer >= 1"):
        get_problem("cifar10-resnet20", data_dir=root, pretrain_epochs=0)
    gpu = get_problem("cifar10-resnet20", data_dir=root, pretrain_epochs=2, pretrain_device="cuda")
    assert gpu.pretrain["device"] == "cuda" and gpu.fingerprint() != cifar.fingerprint()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            pretrain_dense(gpu)


def test_pretraining_is_deterministic_and_trains_batch_norm(cifar):
    a, b = pretrain_dense(cifar), pretrain_dense(cifar)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    init = cifar.model().state_dict()
    assert not torch.equal(a["conv1.weight"], init["conv1.weight"])
    assert int(a["bn1.num_batches_tracked"]) == 2 * 2  # 2 epochs of 160 images in batches of 128
    assert not torch.equal(a["bn1.running_mean"], init["bn1.running_mean"])


def test_every_criterion_and_allocation_prunes_to_90_percent(cifar):
    """Every combination the space can sample prunes the convolutions (a combination that raised
    would stop a search): exactly round(0.9 N) weights, one-shot."""
    ev = Evaluator(cifar)
    n = sum(m.weight.numel() for m in cifar.model().modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    for criterion in cifar.space["criterion"].choices:
        for allocation in cifar.space["allocation"].choices:
            run = ev.start({**cifar.baseline_config(), "criterion": criterion, "allocation": allocation,
                            "calibration_samples": 32})
            zeros = sum(int((w == 0).sum()) for w in run.pruned.weights)
            assert zeros == round(0.9 * n) and not run.pruned.skipped, (criterion, allocation)


def test_fine_tune_is_deterministic_and_resumes_exactly(cifar, tmp_path):
    cfg = {**cifar.baseline_config(), "lr": 3e-3, "epochs": 2}
    a = Evaluator(cifar).evaluate(cfg)
    b = Evaluator(cifar).evaluate(cfg)
    assert a.curve == b.curve and len(a.curve) == 2 and a.values == b.values
    assert a.values["sparsity"] == pytest.approx(0.9, abs=1e-4)
    store = CheckpointStore(tmp_path / "cache")
    cached = CachingEvaluator(Evaluator(cifar), store)
    short = cached.evaluate({**cfg, "epochs": 1})
    resumed = cached.evaluate(cfg)  # resumes from the 1-epoch checkpoint
    assert short.curve == a.curve[:1] and resumed.curve == a.curve
    assert resumed.info["epochs_trained"] == 1 and resumed.info["cache"] == "prefix"
    assert cached.evaluate(cfg).curve == a.curve  # an exact hit replays it


def test_resumed_weights_equal_fresh_ones_bit_for_bit(cifar):
    """Weights, batch-norm statistics and Adam's state after 2 epochs, trained straight through or
    stopped after 1 and resumed from its checkpoint in a new run: the crops and flips of epoch 2
    must be the same draws."""
    cfg = {**cifar.baseline_config(), "lr": 3e-3, "epochs": 2}
    ev = Evaluator(cifar)
    fresh = ev.start(cfg)
    for _ in range(2):
        fresh.train_epoch()
    first = ev.start(cfg)
    first.train_epoch()
    saved = first.state()
    resumed = ev.start(cfg)
    resumed.load_state(saved, 1)
    torch.manual_seed(12345)  # whatever the caller's random state
    resumed.train_epoch()
    want, got = fresh.state(), resumed.state()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert not torch.equal(saved["model.conv1.weight"], want["model.conv1.weight"])
    assert not torch.equal(saved["model.bn1.running_mean"], want["model.bn1.running_mean"])


def test_one_shot_scores_the_pruned_model(cifar):
    r = Evaluator(cifar).evaluate({**cifar.baseline_config(), "epochs": 0})
    assert r.curve == [] and r.values["accuracy"] == r.info["accuracy_before_finetune"]
    assert 0.0 <= r.values["accuracy"] <= 1.0
