"""Where Lab 5's thresholds come from: trains the reference's parts A and B over several seeds.

    python scripts/lab5_measure.py [--seeds 0 1 2] [--part A|B|both] [--threads 2]

Prints, per seed, the training time (wall clock, and CPU time: on a shared machine the wall
clock time grows with the load, the CPU time of one thread much less), part A's held-out
accuracy (IoU >= 0.5 and class right) and part B's held-out mAP@0.5, both scored by the
grader's metric (the reference's box_iou and mean_average_precision, as in grading: see
Metric.scored_by) on the same canvases the graded cases use.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.data import canvases as dd  # noqa: E402
from grader.isolation.loading import load_package  # noqa: E402

N_TRAIN_A, N_TEST_A, N_TRAIN_B, N_TEST_B = 4000, 1000, 4000, 500
METRIC = load_package(ROOT / "solutions", "lab5")  # the grader's metric, whatever --impl is trained


def part_a(lab, seed: int) -> tuple[tuple[float, float], float]:
    train, test = dd.lab5_canvases("A", "train", N_TRAIN_A, 0), dd.lab5_canvases("A", "test", N_TEST_A, 0)
    start, cpu = time.perf_counter(), time.process_time()
    model = lab.fit_localizer(torch.from_numpy(train.images), torch.from_numpy(train.boxes),
                              torch.from_numpy(train.labels), seed=seed)
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    boxes, labels = lab.predict_localizer(model, torch.from_numpy(test.images))
    iou = METRIC.box_iou(boxes.double(), torch.from_numpy(test.boxes)).diagonal()
    return seconds, float(((iou >= 0.5) & (labels == torch.from_numpy(test.labels))).double().mean())


def part_b(lab, seed: int) -> tuple[tuple[float, float], float]:
    train, test = dd.lab5_canvases("B", "train", N_TRAIN_B, 0), dd.lab5_canvases("B", "test", N_TEST_B, 0)
    start, cpu = time.perf_counter(), time.process_time()
    model = lab.fit_detector(torch.from_numpy(train.images), torch.from_numpy(train.boxes),
                             torch.from_numpy(train.labels), torch.from_numpy(train.image_index), seed=seed)
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    dets = lab.detect(model, torch.from_numpy(test.images))
    flat = [(b.double().numpy(), s.double().numpy(), lab_.numpy(), i) for i, (b, s, lab_) in enumerate(dets)]
    import numpy as np
    boxes = np.concatenate([f[0] for f in flat]).reshape(-1, 4)
    scores = np.concatenate([f[1] for f in flat])
    labels = np.concatenate([f[2] for f in flat])
    index = np.concatenate([np.full(len(f[1]), f[3]) for f in flat])
    m, _ = METRIC.mean_average_precision(*(torch.from_numpy(np.asarray(a)) for a in (
        boxes, scores, labels.astype(np.int64), index.astype(np.int64), test.boxes, test.labels, test.image_index)))
    return seconds, float(m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--part", choices=["A", "B", "both"], default="both")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--impl", default=str(ROOT / "solutions"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lab = load_package(Path(args.impl), "lab5")
    for part, fn, what in (("A", part_a, "accuracy"), ("B", part_b, "mAP@0.5")):
        if args.part not in (part, "both"):
            continue
        values = []
        for seed in args.seeds:
            seconds, value = fn(lab, seed)
            values.append(value)
            print(f"part {part} seed {seed}: {what} {value:.4f}, training {seconds[0]:.1f} s wall, "
                  f"{seconds[1]:.1f} s CPU ({args.threads} threads)", flush=True)
        print(f"part {part}: mean {sum(values) / len(values):.4f}, worst {min(values):.4f}", flush=True)


if __name__ == "__main__":
    main()
