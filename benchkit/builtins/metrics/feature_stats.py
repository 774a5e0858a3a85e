"""Distances between two sets of image features, and the set metric that feeds them.

* :func:`frechet_distance`: the Fréchet distance between the Gaussians fitted to two feature sets
  (FID when the features are Inception-v3's pool features; Heusel et al., NeurIPS 2017).
* :func:`kernel_distance`: the unbiased squared MMD with the cubic polynomial kernel
  ``k(x, y) = (x . y / d + 1) ** 3``, averaged over random subsets (KID; Binkowski et al., ICLR 2018).
* :func:`discriminative_scores`: P-IDS and U-IDS from a linear SVM fitted to both sets (CoModGAN, MAT).
* :class:`FeatureDistance`: a :class:`benchkit.plugin.interfaces.SetMetric` comparing the features of a
  cell's inpainted composites with those of its ground-truth images; subclasses give the features.
  Its state merges across shards: sums for the Fréchet distance, the features for the kernel one.

Everything is computed in float64 on the CPU; features are ``N x D``.
"""
from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch

from benchkit.plugin.interfaces import SetMetric
from benchkit.plugin.options import Range


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (``D``) and unbiased covariance (``D x D``, divided by N - 1) of ``N x D`` features."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 images per set, got {len(features)}")
    return features.mean(0), np.cov(features, rowvar=False, ddof=1).reshape(features.shape[1], features.shape[1])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``.

    The trace of the matrix square root is computed as the sum of the square roots of the
    eigenvalues of the symmetric ``s1^(1/2) sigma2 s1^(1/2)`` (``s1^(1/2)``: the symmetric root of
    sigma1), which has the same eigenvalues as ``sigma1 sigma2``; tiny negative eigenvalues from
    rounding are clipped to 0. Covariances must be symmetric positive semi-definite.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    product = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.mean())


def kernel_distance(x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> float:
    """KID: the unbiased squared MMD between feature sets ``x`` (``M x D``) and ``y`` (``N x D``)
    with the kernel ``(x . y / D + 1) ** 3``, averaged over ``subsets`` random subsets of
    ``subset_size`` rows of each (drawn without replacement, seeded). When both sets have at most
    ``subset_size`` rows, the whole sets are compared once."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if min(len(x), len(y)) < 2:
        raise ValueError(f"a kernel distance needs at least 2 images per set, got {len(x)} and {len(y)}")
    if max(len(x), len(y)) <= subset_size:
        return _mmd2_unbiased(x, y)
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    return float(np.mean([_mmd2_unbiased(x[rng.choice(len(x), size, replace=False)],
                                          y[rng.choice(len(y), size, replace=False)]) for _ in range(subsets)]))


def stats_from_sums(count: float, total: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of a feature set from its count, sum (``D``) and sum of outer
    products (``D x D``): ``(outer - count * mean mean^T) / (count - 1)``, the same as
    :func:`gaussian_stats` of the features themselves."""
    count = float(count)
    if count < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 images per set, got {int(count)}")
    mean = total / count
    return mean, (outer - count * np.outer(mean, mean)) / (count - 1)


class FeatureDistance(SetMetric):
    """A distance (``distance``: "frechet" or "kernel") between the features of a cell's composites
    and of its ground-truth images; lower is better, 0 for identical sets (Fréchet). Subclasses
    implement :meth:`features` and :meth:`setup` (which loads the feature network and sets
    ``self.source``, the network's identity, under which a batch's features are shared).

    The Fréchet state is, for the composites and the ground truth each, the count, the sum of the
    features and the sum of their outer products (float64): shards merge by adding them.
    """

    distance: ClassVar[Literal["frechet", "kernel"]] = "frechet"
    higher_is_better = False
    states = {f"{side}_{part}": "sum" for side in ("fake", "real") for part in ("count", "sum", "outer")}
    source: tuple = ()

    @abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``N x D`` features of images in [0, 1] (``N x C x H x W``)."""

    def pairs(self, batch):
        """The batch's (side, float64 ``N x D`` features) for the composites and the ground truth."""
        for side, which in (("fake", "prediction"), ("real", "target")):
            yield side, batch.features(self.source, which, self.features).double()

    def update(self, batch) -> None:
        for side, features in self.pairs(batch):
            self.add(f"{side}_count", np.float64(len(features)))
            self.add(f"{side}_sum", features.sum(0))
            self.add(f"{side}_outer", features.T @ features)

    def compute(self) -> float:
        get = self.state.get
        if get("fake_count") is None:
            raise ValueError("a Fréchet distance needs at least 2 images per set, got 0")
        return frechet_distance(*stats_from_sums(get("fake_count"), get("fake_sum"), get("fake_outer")),
                                *stats_from_sums(get("real_count"), get("real_sum"), get("real_outer")))


class FeatureSets(FeatureDistance):
    """A :class:`FeatureDistance` whose state is the features themselves, ``fake`` and ``real``
    (joined across shards in image order, so row i of each is image i): for scores that need the
    whole sets, not their moments."""

    states = {"fake": "cat", "real": "cat"}

    def update(self, batch) -> None:
        for side, features in self.pairs(batch):
            self.add(side, features)

    def sets(self, needed: str) -> tuple[np.ndarray, np.ndarray]:
        """The (fake, real) features; ValueError naming ``needed`` when none were added."""
        fake, real = self.state.get("fake"), self.state.get("real")
        if fake is None or real is None:
            raise ValueError(f"{needed}, got 0")
        return fake, real


class KernelDistance(FeatureSets):
    """A :class:`FeatureDistance` with the kernel distance (KID) and its subset options.

    Parameters
    ----------
    subsets : int
        Random subsets averaged when a set has more than ``subset_size`` images.
    subset_size : int
        Images per subset; sets no larger are compared whole.
    """

    distance = "kernel"  # the subsets are drawn from the whole sets
    seed = 0

    def __init__(self, subsets: Annotated[int, Range(1)] = 100,
                 subset_size: Annotated[int, Range(2)] = 1000) -> None:
        self.subsets, self.subset_size = subsets, subset_size

    def compute(self) -> float:
        fake, real = self.sets("a kernel distance needs at least 2 images per set")
        return kernel_distance(fake, real, self.subsets, self.subset_size, seed=self.seed)


def discriminative_scores(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """P-IDS and U-IDS (Zhao et al., "Large Scale Image Completion via Co-Modulated GANs", ICLR 2021)
    as fenglinglwb/MAT's ``evaluatoin/cal_fid_pids_uids.py`` computes them.

    A linear SVM (scikit-learn ``LinearSVC(dual=False)``, its defaults otherwise) is fitted to the
    real (label 1) and fake (label 0) features together. U-IDS is its misclassification rate on
    those same features; P-IDS the share of pairs (fake i, real i) where the fake's decision value
    exceeds its real's. Both are 0 when the sets are perfectly separable, which is always possible
    when there are fewer images than feature dimensions. ``real`` and ``fake``: ``N x D``, paired by row.
    """
    from sklearn.svm import LinearSVC

    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) < 1 or len(real) != len(fake):
        raise ValueError(f"P-IDS and U-IDS need paired sets of at least one image, got {len(real)} and {len(fake)}")
    inputs = np.concatenate([real, fake])
    targets = np.array([1] * len(real) + [0] * len(fake))
    svm = LinearSVC(dual=False).fit(inputs, targets)
    uids = 1 - svm.score(inputs, targets)
    pids = np.mean(svm.decision_function(fake) > svm.decision_function(real))
    return float(pids), float(uids)


class DiscriminativeScore(FeatureSets):
    """P-IDS (``score = "pids"``) or U-IDS (``"uids"``) of a cell's composites against its ground truth
    (see :func:`discriminative_scores`); higher is better, at most 0.5. The state is the features
    themselves, paired by image. With fewer images than feature dimensions a linear SVM separates
    the sets perfectly and both scores collapse to 0 (fenglinglwb/MAT #86): a warning says so."""

    score: ClassVar[Literal["pids", "uids"]] = "pids"
    higher_is_better = True
    digits = 3

    requires = ("sklearn",)
    install_hint = "pip install 'benchkit[ids]'"

    def compute(self) -> float:
        fake, real = self.sets("P-IDS and U-IDS need at least one image")
        n, dimension = len(real), real.shape[1]
        if n <= dimension:
            warnings.warn(f"{self.name} on {n} images of {dimension} features: a linear SVM can separate so few "
                          "perfectly, so the score tends to 0; use more images than features")
        return discriminative_scores(real, fake)[0 if self.score == "pids" else 1]


# Each feature metric declared once: its measure, its name stem, what it is, its digits. The pair
# per feature network (Inception-v3's and the dataset classifier's) is generated by feature_metrics.
FEATURE_METRICS = (
    (FeatureDistance, "fid", "Fréchet distance of {features}, composites vs ground truth (set metric)", {}),
    (KernelDistance, "kid", "kernel distance (unbiased MMD^2, cubic kernel) of {features}, composites vs ground "
     "truth (set metric)", {"digits": 4}),
    (DiscriminativeScore, "pids", "P-IDS of {features}: a linear SVM's paired fake-above-real rate (set metric)",
     {"score": "pids"}),
    (DiscriminativeScore, "uids", "U-IDS of {features}: a linear SVM's misclassification rate (set metric)",
     {"score": "uids"}),
)


def feature_metrics(network: type, suffix: str, features: str, **attributes) -> dict[str, type]:
    """The four feature metrics (fid, kid, pids, uids) over one feature network: ``network`` is the
    mixin that sets it up and gives ``features(images)``; names are the stems plus ``suffix``
    (``fid-fmnist``); ``attributes`` (per stem) override a metric's class attributes."""
    made = {}
    for measure, stem, description, defaults in FEATURE_METRICS:
        body = {"name": stem + suffix, "description": description.format(features=features), "__module__":
                network.__module__} | defaults | attributes.get(stem, {})
        made[stem] = type(f"{network.__name__}{stem.upper()}", (network, measure), body)
    return made
