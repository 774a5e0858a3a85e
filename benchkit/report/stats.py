"""Paired comparisons of two methods on the same images: is a difference in PSNR or SSIM real?

For each (dataset, mask), the per-image differences ``a - b`` of a metric (paired by image) are
summarised by their mean, a percentile bootstrap 95% confidence interval of that mean, and the
two-sided Wilcoxon signed-rank p-value (scipy). A CI that excludes 0 and a small p-value say the
difference is unlikely to be chance on this many images.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from benchkit.errors import UserError

N_RESAMPLES = 10_000


def bootstrap_ci(values: np.ndarray, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    Draws ``n_resamples`` resamples of the same size with replacement (a generator seeded by
    ``seed``, so the interval is reproducible) and returns the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of their means. NaN for an empty input.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 1000):  # chunks keep memory at 1000 x n
        stop = min(start + 1000, n_resamples)
        picks = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[picks].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (scipy's default method,
    zero differences dropped); 1.0 when every difference is zero, NaN for no data."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        return float("nan")
    if not np.any(differences):
        return 1.0
    return float(stats.wilcoxon(differences, zero_method="wilcox").pvalue)


def _names(metrics: str | tuple[str, ...]) -> tuple[str, ...]:
    """One metric name or several, as a tuple (a string is one name, not its letters)."""
    return (metrics,) if isinstance(metrics, str) else tuple(metrics)


def compare(df: pd.DataFrame, method_a: str, method_b: str, metrics: str | tuple[str, ...] = ("psnr", "ssim"),
            confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Paired difference ``method_a - method_b`` per (dataset, mask) and metric.

    Parameters
    ----------
    df : pandas.DataFrame
        Per-image results, as from :func:`benchkit.load_results`.
    method_a, method_b : str
        The methods compared; images are paired by ``image_id`` within each (dataset, mask).
    metrics : str or sequence of str
        Metric columns to compare: one name, or several. Names that ``df`` lacks are left out; when
        it has none of them, a UserError lists the columns it has.

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, mask, metric): ``n`` (paired images), ``mean_a``, ``mean_b``,
        ``diff`` (mean of a - b; dB for PSNR), ``ci_low``, ``ci_high`` (bootstrap CI of ``diff``)
        and ``p_wilcoxon``. Images where either value is not finite (NaN where a metric failed;
        benchkit's PSNR is capped, never infinite) are left out of ``n``; a (dataset, mask,
        metric) with no finite pair is left out, with a warning.
    """
    import warnings

    from benchkit.store.results import metric_columns

    metrics = _names(metrics)
    present = [m for m in metrics if m in df.columns]
    if not present:
        raise UserError(f"none of the metrics {', '.join(metrics) or '(none)'} is in these results (they hold "
                        f"{', '.join(metric_columns(df)) or 'no per-image metric'})")
    for method in (method_a, method_b):
        if method not in set(df.method):
            raise UserError(f"method '{method}' is not in these results (they hold "
                            f"{', '.join(sorted(set(df.method)))})")
    rows = []
    for (dataset, mask), part in df.groupby(["dataset", "mask"], sort=False):
        a = part[part.method == method_a].set_index("image_id")
        b = part[part.method == method_b].set_index("image_id")
        shared = a.index.intersection(b.index)
        if shared.empty:
            continue
        for metric in present:
            x, y = a.loc[shared, metric].to_numpy(float), b.loc[shared, metric].to_numpy(float)
            finite = np.isfinite(x) & np.isfinite(y)
            d = x[finite] - y[finite]
            if not d.size:
                warnings.warn(f"no image of {dataset}/{mask} has finite {metric} values for both {method_a} and "
                              f"{method_b}: left out of the comparison")
                continue
            low, high = bootstrap_ci(d, confidence, seed=seed)
            rows.append({"dataset": dataset, "mask": mask, "metric": metric, "method_a": method_a,
                         "method_b": method_b, "n": int(d.size), "mean_a": float(x[finite].mean()),
                         "mean_b": float(y[finite].mean()), "diff": float(d.mean()),
                         "ci_low": low, "ci_high": high, "p_wilcoxon": wilcoxon_p(d)})
    return pd.DataFrame(rows)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979) of a family of ``m`` tests, in the given order:
    sorted ascending, the i-th smallest (from 0) is multiplied by ``m - i``, made non-decreasing
    along the order, and capped at 1. NaN stays NaN and is not counted in ``m``."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else np.zeros(0)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _with_holm(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The comparisons joined, with ``p_holm``: Wilcoxon p-values adjusted over all of them together."""
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not table.empty:
        table["p_holm"] = holm(table.p_wilcoxon.to_numpy())
    return table


def compare_to(df: pd.DataFrame, reference: str, metrics: tuple[str, ...] = ("psnr", "ssim")) -> pd.DataFrame:
    """:func:`compare` of every other method against ``reference`` (``method_a`` the other one, so a
    positive ``diff`` is a gain over the reference), with ``p_holm`` adjusted over every row; empty
    when ``df`` has none of ``metrics``."""
    if not any(m in df.columns for m in _names(metrics)):
        return pd.DataFrame()
    return _with_holm([compare(df, m, reference, metrics) for m in dict.fromkeys(df.method) if m != reference])


def compare_all(df: pd.DataFrame, metrics: tuple[str, ...] = ("psnr", "ssim")) -> pd.DataFrame:
    """:func:`compare` for every pair of methods in ``df`` (each unordered pair once), with ``p_holm``
    adjusted over every row; empty when ``df`` has none of ``metrics``."""
    if not any(m in df.columns for m in _names(metrics)):
        return pd.DataFrame()
    return _with_holm([compare(df, a, b, metrics)
                       for a, b in itertools.combinations(list(dict.fromkeys(df.method)), 2)])
