"""Pluggy hook specifications. A plugin module implements any of these with ``@hookimpl``.

Each ``register_*`` hook receives a ``register`` callback; call it once per plugin class (a
:class:`~benchkit.plugin.interfaces.Preset` instance for presets), for example::

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


@hookspec
def register_trainers(register):
    """Register Trainer subclasses (``benchkit train NAME``)."""


@hookspec
def register_presets(register):
    """Register Preset instances (``benchkit run --preset NAME``)."""


@hookspec
def register_executors(register):
    """Register Executor subclasses (``benchkit run --executor NAME``)."""


@hookspec
def register_commands(subparsers, registry):
    """Add subcommands: ``subparsers`` is argparse's; give each parser ``set_defaults(handler=f)``,
    where ``f(args) -> int`` is the exit code (raise ``benchkit.errors.UserError`` for bad input).
    benchkit's own commands (run, score, report, train, data, list, info) register here too.

    ``registry`` (optional to take) is the :class:`~benchkit.plugin.registry.Registry` of every
    plugin; the handler finds the same one in ``args.registry``, and the command line in ``args.argv``."""
