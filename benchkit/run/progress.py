"""A run's progress on stderr: a bar on a terminal, one line per finished cell in a log.

A bar redraws itself with carriage returns, which a redirected log keeps as one endless line; so
when stderr is not a terminal, each finished cell is one line instead. The bar shows its time
estimate only once a tenth of the images are done, before which it says nothing useful.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

ESTIMATE_AFTER = 0.1  # fraction of the images done before the bar shows the time left
BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}"


class Progress:
    """Progress of ``total`` images: :meth:`update` as images are done, :meth:`cell_done` per cell."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.done = total, 0
        shown = enabled and total > 0
        self.terminal = shown and sys.stderr.isatty()
        self.log = shown and not self.terminal
        self.bar = tqdm(total=total, unit="img", disable=not self.terminal, dynamic_ncols=True,
                        bar_format=BAR + "]")

    def describe(self, text: str) -> None:
        self.bar.set_description(text)

    def update(self, n: int) -> None:
        self.done += n
        if self.terminal and self.done >= ESTIMATE_AFTER * self.total:
            self.bar.bar_format = BAR + "<{remaining}, {rate_fmt}]"
        self.bar.update(n)

    def cell_done(self, cell: str, ok: bool = True) -> None:
        if self.log:
            print(f"benchkit: {'finished' if ok else 'FAILED'} {cell} ({self.done}/{self.total} images done)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        """Close the bar; its output may be a closed pipe, and then the run's state is what matters."""
        try:
            self.bar.close()
        except OSError:
            self.bar.disable = True
