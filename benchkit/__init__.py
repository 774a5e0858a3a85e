"""benchkit: a plugin-based benchmark toolkit for image inpainting."""
from benchkit.plugin.hookspecs import hookimpl

__version__ = "0.4.0"


def load_results(path, level="image"):
    """Read a run folder into a tidy pandas DataFrame, per image (default) or per set (``level="set"``:
    FID and other set scores); see :func:`benchkit.store.results.load_results`."""
    from benchkit.store.results import load_results as _load

    return _load(path, level)


def compare(df, method_a, method_b, metrics=("psnr", "ssim")):
    """Paired difference of two methods per (dataset, mask), with bootstrap CI and Wilcoxon p-value;
    see :func:`benchkit.report.stats.compare`."""
    from benchkit.report.stats import compare as _compare

    return _compare(df, method_a, method_b, metrics)


__all__ = ["__version__", "compare", "hookimpl", "load_results"]
