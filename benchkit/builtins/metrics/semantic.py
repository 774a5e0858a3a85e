"""Semantic metrics that work offline, from a small classifier trained on the dataset itself.

* ``class-acc``: 1 when the inpainted image is classified as its true label, else 0; its mean is
  the accuracy. The ground truth's own accuracy on the whole test split (the ceiling) is printed by
  ``benchkit train classifier`` and kept in the model's JSON (``test_accuracy``).
* ``fid-fmnist`` / ``kid-fmnist``: Fréchet / kernel distance between the classifier's penultimate
  features of a cell's composites and of its ground-truth images (:mod:`benchkit.builtins.metrics.feature_stats`).

The classifier (``classifier-DATASET.safetensors``, :mod:`benchkit.builtins.nets.classifier`) is found like a
method's checkpoint: ``--models-dir``, ``$BENCHKIT_MODELS``, ``./models``, then ``benchkit/builtins/models``,
which ships the one for Fashion-MNIST (it also serves the embedded ``fashion-mnist-mini``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch

from benchkit.builtins import SHIPPED_MODELS
from benchkit.builtins.metrics.feature_stats import feature_metrics
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import ImageMetric, MetricContext, Trainer
from benchkit.plugin.options import Range


class ClassifierUser:
    """Mixin: loads the dataset's classifier in ``setup``. Its features of a batch are shared by
    every classifier metric of the run through :meth:`benchkit.plugin.metric.Batch.features` (class-acc,
    fid-fmnist and kid-fmnist compute them once)."""

    needs_checkpoint = "classifier"
    checkpoint_dirs = SHIPPED_MODELS

    def setup(self, context: MetricContext) -> None:
        from benchkit.builtins.nets.classifier import load_classifier

        self.net = load_classifier(context.checkpoint, context.device)
        self.seed, self.source = context.seed, ("classifier", str(context.checkpoint), str(context.device))
        if next(self.net.parameters()).shape[1] != context.image_shape[0]:
            raise UserError(f"classifier {context.checkpoint} takes {next(self.net.parameters()).shape[1]}-channel "
                            f"images, '{context.dataset}' has {context.image_shape[0]}: train one for it with "
                            f"`benchkit train classifier --dataset {context.dataset}`")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(images)


class ClassAccuracy(ClassifierUser, ImageMetric):
    name = "class-acc"
    description = "1 if the inpainted image is classified as its true label (mean = accuracy); needs labels"
    needs_labels = True
    digits = 3

    def score_batch(self, batch):  # the classifier's features of the batch, shared with fid-fmnist/kid-fmnist
        with torch.no_grad():
            features = batch.features(self.source, "prediction", self.features)
            return (self.net.head(features).argmax(1) == batch.labels).double()


CLASSIFIER_METRICS = feature_metrics(ClassifierUser, "-fmnist", "classifier features", fid={"digits": 3})


class ClassifierTrainer(Trainer):
    """Trains the classifier of ``class-acc``, ``fid-fmnist`` and ``kid-fmnist`` on a labelled dataset.

    Parameters
    ----------
    width : int
        Channels of the first stage (the features have 4 x width numbers).
    lr : float
        Peak Adam learning rate, decayed to 0 along a cosine over all epochs.
    """

    name = "classifier"
    description = "CNN classifier for class-acc / fid-fmnist / kid-fmnist; writes classifier-DATASET.safetensors"
    needs_labels = True

    def __init__(self, width: Annotated[int, Range(4, 512)] = 32,
                 lr: Annotated[float, Range(0, exclusive=True)] = 2e-3) -> None:
        self.width, self.lr = width, lr

    def train(self, images, config, out, command, masks, labels=None, test=None):
        from benchkit.builtins.nets.classifier import measure_accuracy, train_classifier

        path = train_classifier(images, labels, config, Path(out), command, width=self.width, lr=self.lr)
        if test is not None:
            accuracy = measure_accuracy(path, *test, device=config.device)
            print(f"test accuracy {accuracy:.4f} on {len(test[1])} test images (the ceiling of class-acc), "
                  f"recorded in {path.with_suffix('.json').name}")
        return path


@hookimpl
def register_metrics(register):
    for cls in (ClassAccuracy, *CLASSIFIER_METRICS.values()):
        register(cls)


@hookimpl
def register_trainers(register):
    register(ClassifierTrainer)
