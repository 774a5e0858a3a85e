"""One source for the defaults the command line and the runner share, and for option parsing.

Defaults that name plugins (the embedded dataset, the paper's masks, psnr and ssim) are not here:
they are the preset named :data:`DEFAULT_PRESET`, registered by the built-in plugins."""
from __future__ import annotations

from benchkit.errors import UserError

DEFAULT_PRESET = "default"  # the preset that holds the datasets, masks and metrics of a run without flags
DEFAULT_N_IMAGES = 16  # about 3 minutes for every method on 2 CPU cores
DEFAULT_OUT = "results/default"


METRIC_BATCH_SIZE = 256  # composites per metric call under --batch-size auto


def batch_size(text: str) -> int | None:
    """``--batch-size``: ``auto`` (None: each method's preferred size) or a whole number."""
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number or 'auto'") from None


def csv_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; ``","`` gives an empty list (refused by the runner).

    Commas inside inline options separate options, not entries (``gan[iterations=300,lr=0.01],tv``).
    A comma that belongs to a name (a path such as ``folder:/data/photos, 2023``) is written ``\\,``;
    the flags that take lists can also be repeated (``--datasets A --datasets B``)."""
    from benchkit.plugin.spec import split_list

    return split_list(text)


def parse_options(pairs: list[str], prefix_required: bool = True) -> dict[str, dict[str, str]]:
    """Parse ``-o PLUGIN.KEY=VALUE`` pairs into ``{PLUGIN: {KEY: VALUE}}``.

    With ``prefix_required=False`` (``benchkit train``, one plugin), ``KEY=VALUE`` is accepted too
    and filed under the plugin ``""``.
    """
    options: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        plugin, dot, option = key.partition(".") if "." in key else ("", "", key)
        if not sep or not option or (prefix_required and (not dot or not plugin)):
            example = "gan.iterations=100" if prefix_required else "width=128"
            raise UserError(f"option '{pair}' is not {'PLUGIN.' if prefix_required else ''}KEY=VALUE "
                            f"(for example {example})")
        options.setdefault(plugin, {})[option] = value
    return options
