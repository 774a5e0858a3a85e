"""Cost of each metric on a cell of the embedded default: seconds for N composites (32x32 gray).

    python benchmarks/metric_cost.py [--n 512] [--device cpu] [--metrics psnr,ssim,...]

The networks of fid/kid/lpips-* get random weights written in the published files' format to a
temporary folder (their cost does not depend on the values; nothing is downloaded). The classifier
metrics use the shipped Fashion-MNIST classifier. Each metric is set up once (not timed), then
timed over all N images in batches of 256, as `benchkit score` does, each alone (no cached
features); a last row times them all together, as a run scores them, sharing the features of a
network between the metrics that use it.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import tempfile
import time
from pathlib import Path

import torch

from benchkit.builtins.metrics.weights import WEIGHTS
from benchkit.builtins.nets.inception import FIDInception
from benchkit.builtins.nets.lpips import LPIPS
from benchkit.plugin.registry import Registry
from benchkit.run.evaluation import compute_sets, update
from benchkit.run.inputs import Inputs
from benchkit.run.tasks import prepare_metrics


def write_random_weights(folder: Path) -> None:
    inception = FIDInception().state_dict()  # the published file also holds the 1008-class head, which FID ignores
    inception |= {"fc.weight": torch.randn(1008, 2048) * 0.01, "fc.bias": torch.zeros(1008)}
    torch.save(inception, folder / WEIGHTS["inception-fid"].filename)
    for backbone, name in (("alex", "alexnet"), ("vgg", "vgg16")):
        net = LPIPS(backbone)
        torch.save(net.backbone_state(), folder / WEIGHTS[name].filename)
        torch.save({k: v.abs() for k, v in net.state_dict().items() if k.startswith("lin")},
                   folder / WEIGHTS[f"lpips-{backbone}"].filename)
    # runs check weights files by their published digests: accept these random ones for this process only
    for name, entry in list(WEIGHTS.items()):
        digest = hashlib.sha256((folder / entry.filename).read_bytes()).hexdigest()
        WEIGHTS[name] = dataclasses.replace(entry, sha256=digest)


def score(metrics, composite, truth, known, labels, batch_size, device):
    """Every metric over the images, set metrics computed from their states (as a cell's writer does)."""
    scores = update(metrics, composite, truth, known, labels, batch_size, device)
    sets = {name: m for name, m in metrics.items() if m.level == "set" and name in scores.states}
    compute_sets(sets, scores.states, scores.errors)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--metrics", default="psnr,ssim,class-acc,fid-fmnist,kid-fmnist,lpips-alex,lpips-vgg,fid,kid")
    args = parser.parse_args()
    registry = Registry()
    inputs = Inputs(registry)
    split = inputs.split("fashion-mnist-mini", None, args.n)
    truth = split.images
    composite = (truth + 0.1 * torch.randn_like(truth)).clamp(0, 1)
    known = torch.zeros(len(truth), 1, *truth.shape[2:], dtype=torch.bool)
    print(f"{args.n} images of {tuple(truth.shape[1:])}, device {args.device}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"| metric | level | seconds for {args.n} images | ms per image |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        write_random_weights(Path(folder))
        for name in args.metrics.split(","):
            metrics, _ = prepare_metrics(inputs, [name], "fashion-mnist-mini", split, args.device, None,
                                         folder, 0)
            started = time.perf_counter()
            result = score(metrics, composite, truth, known, split.labels, 256, args.device)
            seconds = time.perf_counter() - started
            if result.errors:
                raise SystemExit(f"{name} failed: {result.errors[name]}")
            print(f"| {name} | {metrics[name].level} | {seconds:.2f} | {1000 * seconds / args.n:.2f} |")
        names = args.metrics.split(",")
        metrics, _ = prepare_metrics(inputs, names, "fashion-mnist-mini", split, args.device, None, folder, 0)
        started = time.perf_counter()
        score(metrics, composite, truth, known, split.labels, 256, args.device)
        seconds = time.perf_counter() - started
        print(f"| all of them in one pass (shared features) | | {seconds:.2f} | {1000 * seconds / args.n:.2f} |")


if __name__ == "__main__":
    main()
