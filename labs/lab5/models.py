"""Part A (one digit: a localizer) and part B (1-4 digits: a grid detector), and their training.

Your tasks here are ``build_localizer``, ``build_detector`` and ``detect``; ``fit_localizer``,
``predict_localizer`` and ``fit_detector`` are provided (the grader calls them with their
defaults, inside its time budget). You may tune ``HPARAMS_A`` and ``HPARAMS_B``.

Images are canvases of uint8 grey levels (N, 64, 64); ``to_input`` makes them float32
(N, 1, 64, 64) in [0, 1]. Models compute in float32 (fast); the graded pieces take any dtype.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .boxes import batched_nms, box_cxcywh_to_xyxy  # noqa: F401 - your code needs it
from .coding import GRID, NUM_CLASSES, STRIDE, build_targets, decode_head  # noqa: F401 - your code needs it
from .loss import detection_loss, giou_loss

CANVAS = 64
HPARAMS_A: dict[str, float] = {"epochs": 8, "lr": 2e-3, "batch_size": 64}
HPARAMS_B: dict[str, float] = {"epochs": 12, "lr": 2e-3, "batch_size": 64}


def to_input(images: Tensor) -> Tensor:
    """uint8 canvases (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    return images.to(torch.float32).unsqueeze(1) / 255.0


def _minibatches(n: int, batch_size: int, generator: torch.Generator):
    perm = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield perm[start:start + batch_size]


def _optimizer(model: nn.Module, hp: dict[str, float], n: int):
    """Adam with a cosine learning-rate decay to 0 over the whole run (one step per minibatch)."""
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"])
    steps = int(hp["epochs"]) * -(-n // int(hp["batch_size"]))
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))


# ----------------------------------------------------------------------------- part A


def _conv(c_in: int, c_out: int, stride: int) -> nn.Module:
    """3x3 convolution -> BatchNorm -> ReLU (BatchNorm makes the short training converge)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def build_localizer() -> nn.Module:
    """A CNN for one digit per canvas: (N, 1, 64, 64) -> (N, 4 + 10).

    Columns 0-3 are the box before squashing: ``localizer_boxes`` maps them through a sigmoid
    to (cx, cy, w, h) as fractions of the canvas. Columns 4-13 are the class logits.
    Suggested: three stride-2 3x3 convolution-BatchNorm-ReLU blocks (16, 32, 32 channels),
    a stride-1 block, then Linear(32*8*8, 128) -> ReLU -> Linear(128, 14).
    """
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("build_localizer: not implemented yet")


def localizer_boxes(out: Tensor) -> Tensor:
    """Provided: the localizer's output (N, 14) -> boxes (N, 4) xyxy in pixels."""
    return box_cxcywh_to_xyxy(torch.sigmoid(out[:, :4]) * CANVAS)


def _epochs(n: int, progress: bool) -> Iterable[int]:
    """``range(n)``, drawn as a progress bar (tqdm, a tick per epoch) when ``progress`` (the notebook
    and ``python -m lab5.show`` ask for it; grading never does)."""
    if not progress:
        return range(n)
    from tqdm.auto import trange

    return trange(n, desc="training", unit="epoch")


def fit_localizer(images: Tensor, boxes: Tensor, labels: Tensor, seed: int = 0,
                  progress: bool = False) -> nn.Module:
    """Provided: trains ``build_localizer()`` with Adam (cosine decay) on cross-entropy + your ``giou_loss``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_localizer()
    x, boxes = to_input(images), boxes.to(torch.float32)
    opt, sched = _optimizer(model, HPARAMS_A, len(x))
    model.train()
    for _ in _epochs(int(HPARAMS_A["epochs"]), progress):
        for idx in _minibatches(len(x), int(HPARAMS_A["batch_size"]), gen):
            out = model(x[idx])
            loss = F.cross_entropy(out[:, 4:], labels[idx]) + giou_loss(localizer_boxes(out), boxes[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


@torch.no_grad()
def predict_localizer(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """Provided: boxes (N, 4) xyxy and classes (N,) int64 for uint8 canvases (N, 64, 64)."""
    model.eval()
    out = torch.cat([model(x) for x in to_input(images).split(256)])
    return localizer_boxes(out), out[:, 4:].argmax(dim=1)


# ----------------------------------------------------------------------------- part B


def build_detector() -> nn.Module:
    """A fully convolutional detector: (N, 1, 64, 64) -> raw head output (N, 5 + 10, 8, 8).

    The output layout is fixed by ``decode_head`` (see coding.py): objectness, 4 box-code
    channels, 10 class logits per cell of the 8x8 grid (stride 8).
    Suggested: the localizer's convolutions (stride 8 in total), one more 3x3 convolution, and
    a 1x1 convolution to 15 channels.
    """
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("build_detector: not implemented yet")


def fit_detector(images: Tensor, boxes: Tensor, labels: Tensor, image_index: Tensor, seed: int = 0,
                 progress: bool = False) -> nn.Module:
    """Provided: trains ``build_detector()`` with Adam (cosine decay) on your ``detection_loss``, ``build_targets``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_detector()
    x = to_input(images)
    obj, cls, tbox = build_targets(boxes.to(torch.float32), labels, image_index, len(x), GRID, STRIDE)
    opt, sched = _optimizer(model, HPARAMS_B, len(x))
    model.train()
    for _ in _epochs(int(HPARAMS_B["epochs"]), progress):
        for idx in _minibatches(len(x), int(HPARAMS_B["batch_size"]), gen):
            loss = detection_loss(model(x[idx]), obj[idx], cls[idx], tbox[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


@torch.no_grad()
def detect(model: nn.Module, images: Tensor, score_threshold: float = 0.05, iou_threshold: float = 0.5,
           max_detections: int = 20) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Detections on uint8 canvases (N, 64, 64): one ``(boxes (K, 4), scores (K,), labels (K,))`` per canvas.

    For every cell: score = sigmoid(objectness) * the largest softmax class probability, label
    = that class, box = the decoded box. Keep the cells with score > ``score_threshold``, run
    ``batched_nms`` by label with ``iou_threshold``, and return at most ``max_detections``
    boxes per canvas, by decreasing score.
    """
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("detect: not implemented yet")
