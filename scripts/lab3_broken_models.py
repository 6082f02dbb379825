"""Measures what known broken Lab 3 CNNs reach on MNIST, to keep the accuracy threshold clearly above them.

Each model is the reference with one patch (as tests/engine/test_lab3_buggy.py patches it), trained by the
real fit_mnist on the training split and scored on the held-out split, as the mnist_accuracy case does:

* ``affine``: build_cnn without any ReLU and with average pooling: an affine map of the pixels;
* ``no-relu``: build_cnn without any ReLU, max pooling kept (the max is its only nonlinearity);
* ``stale-columns``: a Conv2d that reuses the im2col columns of its first forward forever (it crashes on
  the first batch of another size);
* ``stale-columns-per-shape``: the same, recomputed only when the input's shape changes (a "cache").

The handout (solutions/lab3/README.md, section 7) quotes these figures next to the threshold
(tests/lab3/cases.py: ACCURACY_THRESHOLD).

    python scripts/lab3_broken_models.py                       # every model, seed 0 (the grader's seed)
    python scripts/lab3_broken_models.py --model affine --seeds 0 1
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from grader import paths
from grader.data import mnist  # first: it pins BLAS to one thread before NumPy loads
from grader.isolation.loading import load_package

LAYERS = ("        Conv2d(1, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),\n"
          "        Conv2d(8, 16, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),\n"
          "        Flatten(), Linear(16 * 7 * 7, 64, rng), ReLU(), Linear(64, 10, rng),\n")
IM2COL_CALL = "cols = im2col(x, self.kernel_size, self.stride, self.padding)"
PATCHES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "affine": {"cnn.py": [(LAYERS, LAYERS.replace(" ReLU(),", "").replace("MaxPool2d(2)", "AvgPool2d(2)")),
                          ("from .pooling import Flatten, MaxPool2d",
                           "from .pooling import AvgPool2d, Flatten, MaxPool2d")]},
    "no-relu": {"cnn.py": [(LAYERS, LAYERS.replace(" ReLU(),", ""))]},
    "stale-columns": {"conv.py": [(IM2COL_CALL, "cols = self._cols if self._cols is not None else "
                                                + IM2COL_CALL.removeprefix("cols = "))]},
    "stale-columns-per-shape": {"conv.py": [(IM2COL_CALL, "cols = self._cols if self._x_shape == x.shape else "
                                                          + IM2COL_CALL.removeprefix("cols = "))]},
}


def patched(model: str, where: Path) -> Path:
    """A copy of the reference lab3 with ``model``'s patches applied (each must match exactly once)."""
    root = where / model
    shutil.copytree(paths.solutions_dir() / "lab3", root / "lab3", ignore=shutil.ignore_patterns("__pycache__"))
    for file, edits in PATCHES[model].items():
        path = root / "lab3" / file
        text = path.read_text()
        for old, new in edits:
            if text.count(old) != 1:
                raise SystemExit(f"{model}: the patch no longer matches {file} exactly once: {old!r}")
            text = text.replace(old, new)
        path.write_text(text)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=sorted(PATCHES), help="a model (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    if not (paths.solutions_dir() / "lab3").is_dir():
        return print("needs solutions/lab3 (the reference): an instructor's checkout", file=sys.stderr) or 2
    split = mnist.load_mnist()
    with tempfile.TemporaryDirectory(prefix="lab3-broken-") as tmp:
        for model in args.model or list(PATCHES):
            lab = load_package(patched(model, Path(tmp)), "lab3")
            for seed in args.seeds:
                start = time.process_time()
                try:
                    trained = lab.fit_mnist(split.train_images, split.train_labels, seed=seed)
                    accuracy = float((lab.predict(trained, split.test_images) == split.test_labels).mean())
                    result = f"accuracy {accuracy:.4f}"
                except Exception as exc:  # noqa: BLE001 - a broken model may also crash: that is a finding
                    result = f"raised {type(exc).__name__}: {exc}"
                print(f"{model:<14} seed {seed}: {result} ({time.process_time() - start:.0f} s CPU)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
