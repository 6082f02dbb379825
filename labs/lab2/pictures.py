"""What BatchNorm does, in pictures (provided, not a task): the notebook draws them with YOUR layers.

The handout's experiment (``scripts/lab2_bn_experiment.py``), shortened so that it runs in the
notebook in seconds: the same 784-128-128-10 ReLU MLP with plain SGD, without BatchNorm and with
a BatchNorm1d after each hidden Linear, trained for a few hundred mini-batches. Each training
step records what the network actually sees in that step:

* the distribution of each ReLU's input (percentiles over the batch and the 128 units): without
  BatchNorm it drifts and, at a large learning rate, explodes; with it, it stays centred and
  scaled by (beta, gamma);
* the training loss;
* for the first BatchNorm1d, the batch mean and variance of a few features next to its running
  statistics, which follow them (an exponential moving average with weight ``momentum``).

    from lab2 import pictures
    runs = pictures.experiment(data.train_images, data.train_labels, lrs=(0.1, 2.0), steps=250)
    pictures.draw_activations(plt, runs, lr=2.0); pictures.draw_losses(plt, runs)
    pictures.draw_running_stats(plt, runs[(0.1, True)], data.train_images)

The functions take matplotlib's ``pyplot`` as an argument: grading never imports matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from .batchnorm import BatchNorm1d
from .lab1 import SGD, Linear, ReLU, Sequential, SoftmaxCrossEntropy
from .model import preprocess

#: Percentiles drawn as bands: 5-95 (light), 25-75 (dark), and the median (line).
PERCENTILES = (5, 25, 50, 75, 95)
#: Features of the first BatchNorm1d whose statistics are followed step by step.
TRACKED = (0, 1, 2)


@dataclass
class Run:
    """What one training run recorded at every step."""

    lr: float
    batchnorm: bool
    model: Sequential
    losses: list[float] = field(default_factory=list)
    #: per hidden layer: (steps, len(PERCENTILES)) percentiles of that layer's ReLU input
    bands: list[list[np.ndarray]] = field(default_factory=list)
    #: first BatchNorm1d, TRACKED features: batch mean, batch (unbiased) variance, running mean, running var
    batch_mean: list[np.ndarray] = field(default_factory=list)
    batch_var: list[np.ndarray] = field(default_factory=list)
    running_mean: list[np.ndarray] = field(default_factory=list)
    running_var: list[np.ndarray] = field(default_factory=list)


def build(rng: np.random.Generator, batchnorm: bool, hidden: int = 128) -> Sequential:
    """784-128-128-10 ReLU MLP, with a BatchNorm1d after each hidden Linear when ``batchnorm``."""
    layers: list = []
    for d_in, d_out in ((784, hidden), (hidden, hidden)):
        layers.append(Linear(d_in, d_out, rng))
        if batchnorm:
            layers.append(BatchNorm1d(d_out))
        layers.append(ReLU())
    layers.append(Linear(hidden, 10, rng))
    return Sequential(*layers)


def train(images: np.ndarray, labels: np.ndarray, *, lr: float, batchnorm: bool, steps: int,
          batch_size: int = 64, seed: int = 0) -> Run:
    """``steps`` SGD steps, recording each hidden layer's ReLU input and the first BatchNorm's statistics.

    The forward goes layer by layer (what ``Sequential.forward`` does) so that the input of each
    ReLU can be kept; the backward is the model's own.
    """
    rng = np.random.default_rng(seed)
    x, y = preprocess(images), np.asarray(labels, dtype=np.int64)
    model = build(rng, batchnorm)
    run = Run(lr, batchnorm, model)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = SGD(model.parameters(), lr=lr)
    relus = [i for i, layer in enumerate(model.layers) if isinstance(layer, ReLU)]
    run.bands = [[] for _ in relus]
    first_bn = next((layer for layer in model.layers if isinstance(layer, BatchNorm1d)), None)
    model.train()
    order = np.concatenate([rng.permutation(len(x)) for _ in range(-(-steps * batch_size // len(x)))])
    with np.errstate(all="ignore"):  # a diverging run overflows: that is what the picture shows
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            optimizer.zero_grad()
            h = x[idx]
            for i, layer in enumerate(model.layers):
                if first_bn is not None and layer is first_bn:
                    n = len(h)
                    run.batch_mean.append(h[:, TRACKED].mean(axis=0))
                    run.batch_var.append(h[:, TRACKED].var(axis=0) * n / (n - 1))
                if i in relus:
                    run.bands[relus.index(i)].append(np.percentile(h, PERCENTILES))
                h = layer(h)
                if first_bn is not None and layer is first_bn:
                    run.running_mean.append(first_bn.running_mean[list(TRACKED)].copy())
                    run.running_var.append(first_bn.running_var[list(TRACKED)].copy())
            run.losses.append(float(loss_fn(h, y[idx])))
            model.backward(loss_fn.backward())
            optimizer.step()
    return run


def experiment(images: np.ndarray, labels: np.ndarray, lrs: tuple[float, ...] = (0.1, 2.0),
               steps: int = 250, seed: int = 0) -> dict[tuple[float, bool], Run]:
    """Every (learning rate, with BatchNorm or not) pair, on the same data order and initial seed."""
    return {(lr, bn): train(images, labels, lr=lr, batchnorm=bn, steps=steps, seed=seed)
            for lr in lrs for bn in (False, True)}


def _name(run: Run) -> str:
    return ("with" if run.batchnorm else "without") + f" BatchNorm, lr {run.lr:g}"


def draw_activations(plt: ModuleType, runs: dict[tuple[float, bool], Run], lr: float):
    """One panel per (BatchNorm or not) x hidden layer: percentile bands of the ReLU's input over steps.

    A symmetric log scale on y, so that a distribution that explodes stays on the picture next
    to one of width 1; steps where the values are no longer finite (the run diverged) are left blank.
    """
    pair = [runs[(lr, False)], runs[(lr, True)]]
    n_layers = len(pair[0].bands)
    fig, axes = plt.subplots(2, n_layers, figsize=(4.2 * n_layers, 6), sharex=True, squeeze=False)
    for row, run in enumerate(pair):
        for col, bands in enumerate(run.bands):
            ax = axes[row, col]
            b = np.array(bands)
            b[~np.isfinite(b)] = np.nan
            steps = np.arange(len(b))
            ax.fill_between(steps, b[:, 0], b[:, 4], color="C0" if row == 0 else "C1", alpha=0.25,
                            label="5-95th percentile")
            ax.fill_between(steps, b[:, 1], b[:, 3], color="C0" if row == 0 else "C1", alpha=0.55,
                            label="25-75th percentile")
            ax.plot(steps, b[:, 2], color="k", linewidth=1, label="median")
            ax.axhline(0, color="0.5", linewidth=0.6)
            ax.set_yscale("symlog", linthresh=1.0)
            where = "BatchNorm output" if run.batchnorm else "Linear output"
            last = b[-20:]
            dead = float(np.mean(last[:, 3] <= 0)) if np.isfinite(last).all() else float("nan")
            ax.set_title(f"{_name(run)}\nhidden layer {col + 1}: ReLU input ({where})"
                         + ("\nat the end over 75% are < 0: the ReLU outputs mostly 0" if dead > 0.5 else ""),
                         fontsize=9)
            if not np.all(np.isfinite(b)):
                first = int(np.flatnonzero(~np.isfinite(b).all(axis=1))[0])
                ax.axvline(first, color="red", linewidth=1)
                ax.text(first, 0.5, f" diverged (step {first})", color="red", fontsize=8,
                        transform=ax.get_xaxis_transform())
            if row == 1:
                ax.set_xlabel("training step")
            if col == 0:
                ax.set_ylabel("value (symmetric log scale)")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle("What each hidden layer's ReLU receives during training, per mini-batch", fontsize=11)
    fig.tight_layout()
    return fig


def draw_losses(plt: ModuleType, runs: dict[tuple[float, bool], Run], smooth: int = 10):
    """One panel per learning rate: the training loss with and without BatchNorm (moving average)."""
    lrs = sorted({lr for lr, _ in runs})
    fig, axes = plt.subplots(1, len(lrs), figsize=(5 * len(lrs), 3.6), sharey=True, squeeze=False)
    for ax, lr in zip(axes[0], lrs, strict=True):
        for bn, color in ((False, "C0"), (True, "C1")):
            losses = np.array(runs[(lr, bn)].losses)
            losses[~np.isfinite(losses)] = np.nan
            kernel = np.ones(smooth) / smooth
            ax.plot(np.arange(smooth - 1, len(losses)), np.convolve(losses, kernel, mode="valid"), color=color,
                    label=("with" if bn else "without") + " BatchNorm")
        ax.axhline(np.log(10), color="0.5", linestyle="--", linewidth=0.8)
        ax.text(0, np.log(10), " ln 10: a constant guess", fontsize=8, va="bottom", color="0.4")
        ax.set(title=f"lr {lr:g}", xlabel="training step", ylim=(0, 3.5))
        ax.legend(fontsize=8, loc="upper right")
    axes[0, 0].set_ylabel(f"training loss (mean of {smooth} steps)")
    fig.suptitle("The same MLP and data order, plain SGD: without and with BatchNorm", fontsize=11)
    fig.tight_layout()
    return fig


def data_statistics(run: Run, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance, over ``images``, of the first BatchNorm1d's input under the final weights."""
    first = run.model.layers[0]
    h = first(preprocess(images))
    return h.mean(axis=0), h.var(axis=0)


def draw_running_stats(plt: ModuleType, run: Run, images: np.ndarray):
    """The first BatchNorm1d's running statistics following the batch statistics, and where they end.

    Left, middle: for a few features, each mini-batch's mean (variance) as dots and the running
    estimate as a line. Right: at the end, every feature's running mean against the mean of its
    input over ``images`` with the final weights (on the diagonal: the running statistics are the
    data's, which is what eval mode normalises with).
    """
    bn = next(layer for layer in run.model.layers if isinstance(layer, BatchNorm1d))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    steps = np.arange(len(run.batch_mean))
    for ax, batch, running, what in ((axes[0], run.batch_mean, run.running_mean, "mean"),
                                     (axes[1], run.batch_var, run.running_var, "variance")):
        batch, running = np.array(batch), np.array(running)
        for k, feature in enumerate(TRACKED):
            ax.plot(steps, batch[:, k], ".", markersize=2, color=f"C{k}", alpha=0.5)
            ax.plot(steps, running[:, k], color=f"C{k}", linewidth=1.5, label=f"feature {feature}")
        ax.set(title=f"{what}: batch (dots), running (line)", xlabel="training step")
        ax.legend(fontsize=8)
    mean, var = data_statistics(run, images)
    ax = axes[2]
    ax.plot(mean, bn.running_mean, ".", markersize=4, label="mean")
    ax.plot(var, bn.running_var, ".", markersize=4, label="variance")
    lo = min(mean.min(), bn.running_mean.min(), 0)
    hi = max(var.max(), bn.running_var.max(), mean.max())
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8, label="equal")
    ax.set(title=f"after {len(steps)} steps: all {len(mean)} features", xlabel="statistic of the data",
           ylabel="running statistic")
    ax.legend(fontsize=8)
    fig.suptitle(f"First BatchNorm1d ({_name(run)}): running statistics converge to the data's", fontsize=11)
    fig.tight_layout()
    return fig
