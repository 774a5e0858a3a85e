"""Built-in presets: ``yeh2017``, Table 1 of Yeh et al. 2017.

Datasets CelebA, SVHN and Stanford Cars, the four masks, the Context Encoder against the paper's
method, PSNR in dB on the test sets (the paper's numbers are printed beside ours).
"""
from __future__ import annotations

from benchkit.hookspecs import hookimpl
from benchkit.interfaces import Preset

YEH2017 = Preset(
    name="yeh2017",
    description="Yeh et al. 2017, Table 1: PSNR (dB) of CE / ours on CelebA, SVHN and Cars, four masks",
    datasets=("celeba", "svhn", "cars"),
    masks=("center", "pattern", "random", "half"),
    methods=("ce", "gan"),
    pair=("ce", "gan"),
    metric="psnr",
    paper={
        "celeba": {"center": (21.3, 19.4), "pattern": (19.2, 17.4), "random": (20.6, 22.8), "half": (15.5, 13.7)},
        "svhn": {"center": (22.3, 19.0), "pattern": (22.3, 19.8), "random": (24.1, 33.0), "half": (19.1, 14.6)},
        "cars": {"center": (14.1, 13.5), "pattern": (14.0, 14.1), "random": (16.1, 18.9), "half": (12.6, 11.1)},
    },
    labels={"celeba": "CelebA", "svhn": "SVHN", "cars": "Cars"},
)


@hookimpl
def register_presets(register):
    register(YEH2017)
