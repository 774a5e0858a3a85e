"""The base of every plugin kind (methods, masks, metrics, datasets, trainers, executors)."""
from __future__ import annotations

from typing import ClassVar


class Plugin:
    """Base of every plugin kind: a registered name and a one-line description.

    ``requires`` lists the modules of optional dependencies (``install_hint`` says how to get
    them); without one the plugin cannot run, said in one line before anything runs.
    ``spec_option`` names the option that the argument of a spec fills (``folder:DIR`` fills
    ``folder``); None: the plugin takes no ``NAME:ARG``. An option called ``name`` names the rows
    of a method (``predictions:DIR[name=lama]`` reads ``lama``) and is the one option that does.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    spec_option: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()  # modules of optional dependencies (an extra)
    install_hint: ClassVar[str] = ""  # how to get them: "pip install 'benchkit[ids]'"

    @classmethod
    def missing_requirement(cls) -> str | None:
        """Why the plugin cannot run here (a module of ``requires`` is missing), or None: the one
        declaration of optional dependencies for every plugin kind, checked before a run starts and
        shown by ``benchkit list``."""
        import importlib.util

        for module in cls.requires:
            if importlib.util.find_spec(module) is None:
                return f"'{cls.name}' needs the module '{module}': {cls.install_hint or 'install it'}"
        return None
