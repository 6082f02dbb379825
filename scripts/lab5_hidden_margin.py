"""How the reference does on the hidden variants of Lab 5's training cases (instructors).

    python scripts/lab5_hidden_margin.py

Trains the reference's parts A and B once each (training seed 0, one torch thread, the graded
training canvases) and scores the same model, with the graded case's own Metric (the grader's
metric), on the public evaluation canvases and on those of every hidden seed in
solutions/lab5/hidden.toml: the margin the hidden variants leave above the thresholds. Run it
after changing the hidden seeds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader import paths  # noqa: E402
from grader.isolation.loading import load_cases, load_package  # noqa: E402
from grader.judging.expected import make_inputs  # noqa: E402
from grader.runner import hidden_seeds  # noqa: E402


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _outputs(ref, model, part: str, images: torch.Tensor) -> dict[str, np.ndarray]:
    """What the training case's run returns, from the reference's model."""
    if part == "A":
        boxes, labels = ref.predict_localizer(model, images)
        return {"pred_boxes": boxes.detach().numpy().astype(np.float64), "pred_labels": labels.numpy()}
    dets = ref.detect(model, images)
    return {"det_boxes": np.concatenate([d[0].detach().numpy().reshape(-1, 4) for d in dets]).astype(np.float64),
            "det_scores": np.concatenate([d[1].detach().numpy() for d in dets]).astype(np.float64),
            "det_labels": np.concatenate([d[2].numpy() for d in dets]).astype(np.int64),
            "det_index": np.concatenate([np.full(len(d[1]), k) for k, d in enumerate(dets)]).astype(np.int64)}


def main() -> None:
    torch.set_num_threads(1)
    lab = load_cases("lab5", paths.tests_dir())
    ref = load_package(paths.solutions_dir(), "lab5")
    for name, part in (("localizer_accuracy", "A"), ("detector_map", "B")):
        case = lab.get(name)
        variants = [("public", make_inputs(case, case.seeds[0]))]
        variants += [(f"hidden seed {s}", make_inputs(case, s, k)) for k, s in enumerate(hidden_seeds("lab5"))]
        i = variants[0][1]
        start = time.process_time()
        if part == "A":
            model = ref.fit_localizer(_t(i["train_images"]), _t(i["train_boxes"]), _t(i["train_labels"]), seed=0)
        else:
            model = ref.fit_detector(_t(i["train_images"]), _t(i["train_boxes"]), _t(i["train_labels"]),
                                     _t(i["train_index"]), seed=0)
        print(f"{name}: trained in {time.process_time() - start:.1f} s of CPU time", flush=True)
        metric = case.checks[0]
        for label, inputs in variants:
            score = metric.score(ref, inputs, _outputs(ref, model, part, _t(inputs["test_images"])))
            print(f"  {label}: {len(inputs['test_images'])} canvases, {score:.4f} "
                  f"(threshold {metric.threshold})", flush=True)


if __name__ == "__main__":
    main()
