"""Built-in presets: ``default`` (what ``benchkit run`` does without flags) and ``yeh2017``, Table 1
of Yeh et al. 2017.

``yeh2017``: datasets CelebA, SVHN and Stanford Cars, the four masks, the Context Encoder against
the paper's method, PSNR in dB on the test sets (the paper's numbers are printed beside ours).

``successors``: the paper's method (``gan``) and ``ce`` against Deep Image Prior and RePaint, with
``nn`` and ``tv``, on the paper's four masks and LaMa's ``thick``, scored by PSNR, SSIM, class
accuracy and domain FID, with the seconds each method took per image.
"""
from __future__ import annotations

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Preset

PAPER_MASKS = ("center", "pattern", "random", "half")  # Yeh et al. 2017, Table 1, in its order

DEFAULT = Preset(
    name="default",
    description="every available method on the embedded Fashion-MNIST subset, the paper's four masks",
    datasets=("fashion-mnist-mini",),  # embedded: works offline right after install
    masks=PAPER_MASKS,
    metrics=("psnr", "ssim", "l1", "psnr_hole"),
    shown=("psnr", "ssim"),
)

YEH2017 = Preset(
    name="yeh2017",
    description="Yeh et al. 2017, Table 1: PSNR (dB) of CE / ours on CelebA, SVHN and Cars, four masks",
    datasets=("celeba", "svhn", "cars"),
    masks=PAPER_MASKS,
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


SUCCESSORS = Preset(
    name="successors",
    description="the paper's method against its successors (DIP, RePaint) and baselines, on the embedded subset",
    datasets=("fashion-mnist-mini",),
    masks=(*PAPER_MASKS, "thick"),
    methods=("gan", "ce", "dip", "repaint", "nn", "tv"),
    metrics=("psnr", "ssim", "class-acc", "fid-fmnist"),
    shown=("psnr", "ssim", "class-acc", "fid-fmnist", "seconds"),
)


@hookimpl
def register_presets(register):
    register(DEFAULT)
    register(YEH2017)
    register(SUCCESSORS)
