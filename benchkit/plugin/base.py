"""The base of every plugin kind (methods, masks, metrics, datasets, trainers, executors)."""
from __future__ import annotations

from typing import ClassVar


class Plugin:
    """Base of every plugin kind: a registered name and a one-line description.

    ``spec_option`` names the option that the argument of a spec fills (``folder:DIR`` fills
    ``folder``); None: the plugin takes no ``NAME:ARG``. An option called ``name`` names the rows
    of a method (``predictions:DIR[name=lama]`` reads ``lama``) and is the one option that does.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    spec_option: ClassVar[str | None] = None
