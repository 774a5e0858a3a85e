"""`benchkit score` adds a metric to a finished run from its kept outputs."""
import json

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import benchkit
from benchkit.cli import main
from benchkit.plugin.registry import Registry

RUN = ["run", "--methods", "tv,mean-fill", "--masks", "center,thin", "--n-images", "12", "--metrics", "l1",
       "--out", "r"]


def test_score_adds_metrics_without_running_the_method_again(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(RUN) == 0
    cells = sorted((tmp_path / "r" / "cells").glob("*.json"))
    before = {p: json.loads(p.read_text())["seconds"] for p in cells}
    capsys.readouterr()
    assert main(["score", "r", "--metrics", "psnr,ssim"]) == 0
    assert "psnr (dB) on fashion-mnist-mini" in capsys.readouterr().out
    df = benchkit.load_results(tmp_path / "r")
    assert len(df) == 48 and df[["l1", "psnr", "ssim"]].notna().all().all()
    assert {p: json.loads(p.read_text())["seconds"] for p in cells} == before  # no method ran again
    # the added scores are those of the kept 8-bit composites against the rebuilt ground truth
    truth = Registry(block_external=True).create("dataset", "fashion-mnist-mini").images("test", limit=12).numpy()
    for cell in cells:
        record, arrays = json.loads(cell.read_text()), np.load(cell.with_suffix(".npz"))
        for row, i in enumerate(record["rows"]["image_id"]):
            output = arrays["outputs"][list(arrays["output_ids"]).index(i)].astype(np.float64) / 255
            assert abs(record["rows"]["psnr"][row] - peak_signal_noise_ratio(truth[i], output, data_range=1)) < 1e-6
            ssim = structural_similarity(truth[i, 0], output[0], gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=1)
            assert abs(record["rows"]["ssim"][row] - ssim) < 1e-6
    capsys.readouterr()
    assert main(RUN) == 0  # the original command still reuses every cell: extra columns are fine
    assert "4 finished cells reused" in capsys.readouterr().out


def test_score_refuses_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(RUN) == 0
    for args, message in [(["score", "r", "--metrics", "ssmi"], "did you mean 'ssim'"),
                          (["score", "nowhere", "--metrics", "ssim"], "does not exist")]:
        capsys.readouterr()
        assert main(args) == 2 and message in capsys.readouterr().err
    next((tmp_path / "r" / "cells").glob("*.npz")).unlink()
    capsys.readouterr()
    assert main(["score", "r", "--metrics", "ssim"]) == 2 and "kept no outputs" in capsys.readouterr().err


def test_score_refuses_cells_whose_ids_do_not_match_their_outputs(tmp_path, capsys, monkeypatch):
    """Found by the randomised fuzz run: image ids edited in a cell file gave a traceback."""
    monkeypatch.chdir(tmp_path)
    assert main(RUN) == 0
    cell = next((tmp_path / "r" / "cells").glob("*.json"))
    record = json.loads(cell.read_text())
    for ids, message in [([None] * 12, "is corrupt"), (list(range(100, 112)), "does not match its kept outputs")]:
        record["rows"]["image_id"] = ids
        cell.write_text(json.dumps(record))
        capsys.readouterr()
        assert main(["score", "r", "--metrics", "ssim"]) == 2
        assert message in capsys.readouterr().err
