"""Lab 3 speed: the reference Conv2d (im2col + matrix products) against PyTorch's CPU conv2d.

Everything runs in float64 on ONE thread (NumPy's BLAS and PyTorch alike), in one process. Times
are CPU time of this process (time.process_time: with one thread, the time the code actually ran,
whatever else the machine does), the best of several repeats, and the two implementations are
timed alternately, so what is left of a busy machine's noise (caches, memory bandwidth) hits both
alike; the figures that matter are the RATIOS printed at the end.

    python scripts/bench_conv.py                 # the reference in solutions/ (or labs/ in a release)
    python scripts/bench_conv.py --impl DIR      # another implementation laid out like labs/
    python scripts/bench_conv.py --quick         # fewer repeats, no CNN epoch

Measures:
  * Conv2d forward + backward on x (64, 8, 28, 28) -> 16 filters 3x3, padding 1 (stride 1), and
    the same with stride 2, against torch.nn.functional.conv2d forward + autograd backward
    (input, weight and bias gradients, as the layer computes);
  * one training epoch of the reference CNN (fit_mnist's architecture and hyperparameters, on the
    8000 training digits) against a PyTorch CNN of the same architecture, float64, SGD, same batches.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

# isort: off
from grader.data import mnist  # first: it pins BLAS to one thread before NumPy loads
from grader import paths
from grader.isolation.loading import load_package
import numpy as np
# isort: on


def best_of(fn: Callable[[], object], repeats: int, number: int) -> float:
    """The fastest of ``repeats`` runs of ``number`` calls, per call, in CPU seconds of this process."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - start) / number)
    return best


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, number: int) -> dict[str, float]:
    """Best time per call of each function, the functions taking turns round after round."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], best_of(fn, 1, number))
    return best


def conv_benchmark(lab, torch, stride: int, rounds: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8, 28, 28))
    conv = lab.Conv2d(8, 16, 3, stride=stride, padding=1, rng=rng)
    g = rng.standard_normal(conv(x).shape)

    def ours() -> None:
        conv(x)
        conv.backward(g)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.weight.data, requires_grad=True)
    bt = torch.tensor(conv.bias.data, requires_grad=True)
    gt = torch.tensor(g)

    def theirs() -> None:
        y = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=1)
        y.backward(gt)

    ours(), theirs()  # warm-up
    t = interleaved({"ours": ours, "torch": theirs}, rounds, 3)
    return t["ours"], t["torch"]


def epoch_benchmark(lab, torch, rounds: int) -> tuple[float, float]:
    """One epoch of fit_mnist's loop (reference CNN) vs. the same in PyTorch, float64, 8000 digits."""
    split = mnist.load_mnist()
    x = lab.preprocess(split.train_images)
    y = np.asarray(split.train_labels, dtype=np.int64)
    batch, lr = int(lab.HPARAMS["batch_size"]), float(lab.HPARAMS["lr"])
    order = np.random.default_rng(0).permutation(len(x))
    batches = [order[i:i + batch] for i in range(0, len(x), batch)]

    model = lab.build_cnn(np.random.default_rng(0))
    loss_fn = lab.SoftmaxCrossEntropy()
    opt = lab.SGD(model.parameters(), lr=lr)

    def ours() -> None:
        model.train()
        for idx in batches:
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx])
            model.backward(loss_fn.backward())
            opt.step()

    nn = torch.nn
    tmodel = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                           nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 64), nn.ReLU(),
                           nn.Linear(64, 10)).double()
    topt = torch.optim.SGD(tmodel.parameters(), lr=lr)
    xt, yt = torch.tensor(x), torch.tensor(y)
    tbatches = [torch.tensor(idx) for idx in batches]

    def theirs() -> None:
        for idx in tbatches:
            topt.zero_grad()
            nn.functional.cross_entropy(tmodel(xt[idx]), yt[idx]).backward()
            topt.step()

    t = interleaved({"ours": ours, "torch": theirs}, rounds, 1)
    return t["ours"], t["torch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = paths.solutions_dir() if paths.solutions_dir().is_dir() else paths.labs_dir()
    parser.add_argument("--impl", type=Path, default=default, help=f"folder laid out like labs/ (default: {default})")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, and no CNN epoch")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    lab = load_package(args.impl, "lab3")
    print(f"lab3 from {args.impl}; numpy {np.__version__}, torch {torch.__version__}; float64; "
          f"threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; cores: {os.cpu_count()}")
    rounds = 3 if args.quick else 15
    rows = []
    for stride in (1, 2):
        ours, theirs = conv_benchmark(lab, torch, stride, rounds)
        rows.append((f"Conv2d fwd+bwd, x (64, 8, 28, 28) -> 16 x 3x3, pad 1, stride {stride}", ours, theirs))
    if not args.quick:
        ours, theirs = epoch_benchmark(lab, torch, 3)
        rows.append(("CNN training epoch (8000 digits, batch 32)", ours, theirs))
    width = max(len(r[0]) for r in rows)
    title = f"CPU time per call, best of {rounds} rounds"
    print(f"{title:{width}}  {'ours':>10}  {'torch':>10}  ratio (ours / torch)")
    for name, ours, theirs in rows:
        print(f"{name:{width}}  {ours * 1e3:8.1f}ms  {theirs * 1e3:8.1f}ms  {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
