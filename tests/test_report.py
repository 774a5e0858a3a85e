"""Comparison grids, the HTML report, and bold best values in LaTeX tables."""
import base64
import io
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchkit.cli import main
from benchkit.masking import make_masks
from benchkit.plugin.registry import Registry
from benchkit.report.pictures import HOLE_COLOUR, comparison_grid, read_samples, save_grids
from benchkit.report.tables import format_tables
from benchkit.run.runner import RunConfig, run
from benchkit.store.cells import cell_path
from benchkit.store.results import load_results


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    config = RunConfig(methods=["mean-fill", "tv"], masks=["center", "random"], n_images=24, out=out,
                       batch_size=8, options={"tv": {"max_iter": "50"}})
    run(config, Registry(block_external=True), show_progress=False)
    return out


def test_grid_columns_match_an_independent_reconstruction(run_dir):
    from benchkit.builtins.datasets.basic import FashionMNISTMini

    truth_all = FashionMNISTMini().images("test", limit=24)
    tiles, labels = comparison_grid(run_dir, "fashion-mnist-mini", "center", rows=5, errors=True)
    assert labels == ["input", "mean-fill", "err x2: mean-fill", "tv[max_iter=50]", "err x2: tv[max_iter=50]", "truth"]
    ids = read_samples(cell_path(run_dir, "fashion-mnist-mini", "center", "tv[max_iter=50]"))["ids"][:5]
    assert tiles.shape == (5, 6, 32, 32, 3)
    truth = (truth_all[ids, 0] * 255).round().numpy().astype(np.uint8)
    np.testing.assert_array_equal(tiles[:, -1, ..., 0], truth)  # the ground truth of those images
    from benchkit.builtins.masks.basic import CenterMask

    known = make_masks(CenterMask(), "fashion-mnist-mini", "center", ids.tolist(), 32, 32, 0)[:, 0].numpy()
    assert (tiles[:, 0][~known] == HOLE_COLOUR).all() and (tiles[:, 0, ..., 0][known] == truth[known]).all()
    prediction = tiles[:, 1, ..., 0].astype(int)
    np.testing.assert_array_equal(tiles[:, 2, ..., 0], np.clip(np.abs(truth.astype(int) - prediction) * 2, 0, 255))


def test_pictured_images_chosen_by_seed_shared_by_methods_and_masks(run_dir):
    ids = [read_samples(cell_path(run_dir, "fashion-mnist-mini", mask, method))["ids"].tolist()
           for mask in ("center", "random") for method in ("mean-fill", "tv[max_iter=50]")]
    assert all(i == ids[0] for i in ids) and len(ids[0]) == 16 and ids[0] != list(range(16))


def test_save_grids_writes_one_png_per_dataset_and_mask(run_dir):
    paths = save_grids(run_dir)
    assert sorted(p.name for p in paths) == ["fashion-mnist-mini__center.png", "fashion-mnist-mini__random.png"]
    with Image.open(paths[0]) as image:
        assert image.format == "PNG" and image.width > 4 * 96


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.h2, self.images, self.links, self._in_h2 = [], [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self._in_h2 = tag == "h2"
        if tag == "img":
            self.images.append(attrs["src"])
        self.links += [v for k, v in attrs.items() if k in ("href", "src") and v]

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)
            self._in_h2 = False


def test_html_report_is_self_contained_and_complete(run_dir, capsys):
    assert main(["report", str(run_dir), "--html", "--errors"]) == 0
    html = (run_dir / "report.html").read_text()
    parser = _Collector()
    parser.feed(html)
    assert parser.h2 == ["Run", "Summary tables", "Comparison grids", "PSNR distributions",
                         "By missing fraction", "Paired statistics"]
    assert len(parser.images) == 2
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert all(link.startswith("data:") for link in parser.links), "nothing is fetched from elsewhere"
    assert parser.tags.count("svg") == 2 and parser.tags.count("rect") >= 4  # a box per method and mask
    assert "tv[max_iter=50] − mean-fill" in html and "Holm p" in html and "20-30% missing" in html


def test_report_to_an_unwritable_place_is_one_line_exit_2(run_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", str(run_dir), "--html", str(blocker / "r.html")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_latex_bolds_the_best_of_each_column():
    rows = [("d", "center", m, i, p, l1) for m, p, l1 in (("a", 20.0, 0.3), ("b", 22.0, 0.1), ("c", 21.0, 0.2))
            for i in range(3)]
    df = pd.DataFrame(rows, columns=["dataset", "mask", "method", "image_id", "psnr", "l1"])
    df.loc[df.method == "a", "psnr"] += [0.0, 5.0, 6.0]  # a's mean, 23.67, becomes the best PSNR
    from benchkit.store.results import Display, RunDisplay

    display = RunDisplay(metrics={"psnr": Display(True, "dB", 2), "l1": Display(False, "", 4)})  # as a run records
    latex = format_tables(df, ["psnr", "l1"], "latex", display=display)
    psnr, l1 = latex.split("% l1")
    assert r"a & \textbf{23.67" in psnr and psnr.count(r"\textbf") == 1
    assert r"b & \textbf{0.1000" in l1 and l1.count(r"\textbf") == 1  # lower l1 is better


def test_run_writes_grids_and_says_where(tmp_path, capsys):
    assert main(["run", "--methods", "mean-fill", "--masks", "half", "--n-images", "8", "--out",
                 str(tmp_path / "r"), "--grid-errors"]) == 0
    assert "comparison grids:" in capsys.readouterr().out
    assert (tmp_path / "r" / "grids" / "fashion-mnist-mini__half.png").is_file()
    assert len(load_results(tmp_path / "r")) == 8
