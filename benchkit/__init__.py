"""benchkit: a plugin-based benchmark toolkit for image inpainting."""
from benchkit.hookspecs import hookimpl

__version__ = "0.1.0"


def load_results(path):
    """Read a run folder into a tidy pandas DataFrame; see :func:`benchkit.results.load_results`."""
    from benchkit.results import load_results as _load

    return _load(path)


__all__ = ["__version__", "hookimpl", "load_results"]
