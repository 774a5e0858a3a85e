"""benchkit's own commands, registered through ``register_commands`` as a plugin's are (as tox does
with its own): ``run`` (:mod:`.run`), ``report`` and ``score`` (:mod:`.results`), ``list`` and
``info`` (:mod:`.plugins`), ``train`` and ``data`` (:mod:`.models`).

A handler takes the parsed arguments and returns the exit code. :mod:`benchkit.cli` sets
``args.argv`` (the command line) and ``args.registry`` (the plugins, loaded once) before calling it.
"""
