"""Pluggy hook specifications. A plugin module implements any of these with ``@hookimpl``.

Each hook receives a ``register`` callback; call it once per plugin class, for example::

    @benchkit.hookimpl
    def register_methods(register):
        register(MyMethod)
"""
import pluggy

hookspec = pluggy.HookspecMarker("benchkit")
hookimpl = pluggy.HookimplMarker("benchkit")


@hookspec
def register_methods(register):
    """Register Method subclasses."""


@hookspec
def register_masks(register):
    """Register MaskGenerator subclasses."""


@hookspec
def register_metrics(register):
    """Register Metric subclasses."""


@hookspec
def register_datasets(register):
    """Register Dataset subclasses."""
