"""Set metrics and the semantic metrics: class-acc, fid-fmnist and kid-fmnist on the embedded
default, checked against scipy and hand formulas on the run's kept outputs; scoring later; errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch

import benchkit
from benchkit.builtins.datasets.basic import FashionMNISTMini
from benchkit.builtins.nets.classifier import Classifier, load_classifier, measure_accuracy, train_classifier
from benchkit.builtins.training.loop import TrainConfig
from benchkit.checkpoints import save_model
from benchkit.cli import main
from benchkit.masking import make_masks
from benchkit.plugin.interfaces import SetMetric
from benchkit.plugin.registry import Registry
from benchkit.report.tables import format_tables
from benchkit.run.runner import RunConfig, run
from benchkit.store.cells import cell_path
from benchkit.store.results import failures, run_display

SHIPPED = FashionMNISTMini.models_from  # the shipped classifier is trained on all of Fashion-MNIST


@pytest.fixture
def models(tmp_path):
    """A random classifier for fashion-mnist-mini (its weights do not matter to these tests)."""
    torch.manual_seed(0)
    net = Classifier(1, 10, 4)
    for m in net.modules():  # batch-norm statistics that keep activations varied
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.01, 0.1)
    folder = tmp_path / "models"
    save_model(folder / "classifier-fashion-mnist-mini.safetensors",
               {f"classifier.{k}": v for k, v in net.state_dict().items()},
               {"kind": "classifier", "channels": 1, "classes": 10, "width": 4, "size": 32})
    return folder


def test_set_and_semantic_metrics_match_independent_formulas(tmp_path, models):
    out = tmp_path / "run"
    config = RunConfig(methods=["mean-fill"], masks=["center", "random"], n_images=40, batch_size=16, out=out,
                       metrics=["psnr", "class-acc", "fid-fmnist", "kid-fmnist"], models_dir=str(models))
    run(config, show_progress=False)
    images = benchkit.load_results(out)
    sets = benchkit.load_results(out, level="set")
    assert sorted(sets["mask"]) == ["center", "random"] and set(sets.n_images) == {40}
    assert "fid-fmnist" not in images.columns and "class-acc" in images.columns
    net = load_classifier(models / "classifier-fashion-mnist-mini.safetensors", torch.device("cpu"))
    truth = FashionMNISTMini().images("test", limit=40)
    labels = FashionMNISTMini().labels("test", limit=40)
    with torch.no_grad():
        real = net.features(truth).double().numpy()
    for mask in ("center", "random"):
        # set metrics are updated in the worker on the float composites: mean-fill's, written out here
        known = make_masks(Registry().create("mask", mask), "fashion-mnist-mini", mask, list(range(40)), 32, 32, 0)
        hole_mean = (truth * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        composite = torch.where(known, truth, hole_mean.expand_as(truth))
        with torch.no_grad():
            fake = net.features(composite).double().numpy()
            predicted = net(composite).argmax(1)
        row = sets[sets["mask"] == mask].iloc[0]
        mu1, mu2, s1, s2 = fake.mean(0), real.mean(0), np.cov(fake.T), np.cov(real.T)
        fid = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
        assert row["fid-fmnist"] == pytest.approx(fid, rel=1e-5)
        d, n = fake.shape[1], len(fake)
        k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
        off = ~np.eye(n, dtype=bool)
        kid = k(fake, fake)[off].mean() + k(real, real)[off].mean() - 2 * k(fake, real).mean()
        assert row["kid-fmnist"] == pytest.approx(kid, rel=1e-6)
        accuracy = images[images["mask"] == mask]["class-acc"].to_numpy()
        np.testing.assert_array_equal(accuracy, (predicted == labels).double().numpy())
    text = format_tables(images, ["fid-fmnist", "class-acc"], "latex", sets=sets, display=run_display(out))
    assert "% fid-fmnist on fashion-mnist-mini (one score per set, n = 40 images, lower is better)" in text
    assert "% class-acc on fashion-mnist-mini (mean" in text
    from benchkit.report.html import build_html

    assert "kid-fmnist on fashion-mnist-mini (one score per set" in build_html(out)


def test_report_shows_set_metrics(tmp_path, models, capsys):
    out = tmp_path / "run"
    run(RunConfig(methods=["mean-fill"], masks=["center"], n_images=16, out=out, metrics=["psnr", "fid-fmnist"],
                  models_dir=str(models)), show_progress=False)
    from benchkit.report.html import build_html

    page = build_html(out)
    assert "fid-fmnist on fashion-mnist-mini (one score per set, n = 16 images, lower is better)" in page
    assert main(["report", str(out), "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert "fashion-mnist-mini,fid-fmnist,mean-fill,center," in csv and ",16\n" in csv


def test_metrics_added_later_need_no_method_run(tmp_path, models, capsys):
    out = tmp_path / "run"
    base = ["run", "--methods", "mean-fill,tv", "--masks", "center", "--n-images", "24", "--out", str(out),
            "--models-dir", str(models), "-o", "tv.max_iter=20"]
    assert main(base + ["--metrics", "psnr"]) == 0
    cell = cell_path(out, "fashion-mnist-mini", "center", "tv[max_iter=20]")
    before = json.loads(cell.read_text())
    npz_mtime = cell.with_suffix(".npz").stat().st_mtime_ns
    assert main(["score", str(out), "--metrics", "fid-fmnist", "--models-dir", str(models)]) == 0
    assert "fid-fmnist on fashion-mnist-mini (one score per set" in capsys.readouterr().out
    after = json.loads(cell.read_text())
    assert after["seconds"] == before["seconds"] and after["rows"]["psnr"] == before["rows"]["psnr"]
    assert after["set_scores"]["fid-fmnist"] > 0
    # the same run with more metrics scores the missing ones from the kept outputs: no method runs
    assert main(base + ["--metrics", "psnr,fid-fmnist,class-acc"]) == 0
    printed = capsys.readouterr().out
    assert "class-acc scored from its kept 8-bit outputs (tv[max_iter=20] was not run again)" in printed
    again = json.loads(cell.read_text())
    assert again["seconds"] == before["seconds"] and len(again["rows"]["class-acc"]) == 24
    assert cell.with_suffix(".npz").stat().st_mtime_ns == npz_mtime
    assert main(base + ["--metrics", "psnr,fid-fmnist,class-acc"]) == 0  # now simply reused
    printed = capsys.readouterr().out
    assert "2 finished cells reused" in printed
    # the ceiling of class-acc: the classifier's accuracy on the 24 ground-truth images, counted here
    net = load_classifier(models / "classifier-fashion-mnist-mini.safetensors", torch.device("cpu"))
    with torch.no_grad():
        right = (net(FashionMNISTMini().images("test", 24)).argmax(1) == FashionMNISTMini().labels("test", 24))
    assert (f"ceiling: class-acc of the ground-truth images themselves is {right.double().mean():.3f} on "
            "fashion-mnist-mini (24 images)") in printed


def test_labelled_metrics_refuse_unlabelled_data_before_writing(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    assert main(["run", "--methods", "mean-fill", "--datasets", f"folder:{folder}", "--masks", "center",
                 "--metrics", "psnr,class-acc", "-o", "folder.size=16", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "metric 'class-acc' needs class labels" in err and len(err.strip().splitlines()) == 1
    assert main(["run", "--methods", "mean-fill", "--datasets", f"folder:{folder}", "--masks", "center",
                 "--metrics", "fid-fmnist", "-o", "folder.size=16", "--out", str(out),
                 "--models-dir", str(tmp_path / "none")]) == 2
    assert "benchkit train classifier --dataset folder:" in capsys.readouterr().err
    assert not out.exists()


class ExplodingSet(SetMetric):
    name = "exploding-set"

    def update(self, batch):
        pass

    def compute(self):
        raise RuntimeError("no score today")


class BrokenSetup(SetMetric):
    name = "broken-setup"

    def setup(self, context):
        raise ZeroDivisionError("bug in setup")

    update = compute = ExplodingSet.compute


class Extra:
    @benchkit.hookimpl
    def register_metrics(self, register):
        register(ExplodingSet)
        register(BrokenSetup)


def test_failing_set_metric_fails_only_its_column(tmp_path):
    registry = Registry(block_external=True, extra=[Extra()])
    out = tmp_path / "run"
    outcome = run(RunConfig(methods=["mean-fill"], masks=["center"], n_images=8, out=out,
                            metrics=["psnr", "exploding-set", "broken-setup"]), registry, show_progress=False)
    assert len(outcome.failed) == 1
    assert benchkit.load_results(out)["psnr"].notna().all()
    sets = benchkit.load_results(out, level="set")
    assert np.isnan(sets["exploding-set"].iloc[0]) and np.isnan(sets["broken-setup"].iloc[0])
    assert failures(out).error.tolist() == ["metric 'exploding-set': RuntimeError: no score today",
                                            "metric 'broken-setup': RuntimeError: setup failed: ZeroDivisionError: "
                                            "bug in setup"]


def test_classifier_training_learns_a_separable_task(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (512,), generator=generator)
    images = torch.rand(512, 1, 32, 32, generator=generator) * 0.3
    images[labels == 1, :, 8:24, 8:24] += 0.6  # class 1: a bright square in the middle
    config = TrainConfig(dataset="squares", epochs=2, batch_size=32)
    path = train_classifier(images, labels, config, tmp_path, "test", width=4)
    test_labels = torch.randint(0, 2, (200,), generator=generator)
    test = torch.rand(200, 1, 32, 32, generator=generator) * 0.3
    test[test_labels == 1, :, 8:24, 8:24] += 0.6
    assert measure_accuracy(path, test, test_labels) >= 0.95
    assert json.loads(path.with_suffix(".json").read_text())["test_accuracy"] >= 0.95


def test_shipped_classifier_reaches_the_target_accuracy():
    from benchkit.builtins import SHIPPED_MODELS as folder

    path = folder[0] / f"classifier-{SHIPPED}.safetensors"
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["test_accuracy"] >= 0.92 and info["test_images"] == 10000
    assert path.stat().st_size < 2_000_000
    net = load_classifier(path, torch.device("cpu"))
    with torch.no_grad():
        predicted = net(FashionMNISTMini().images("test")).argmax(1)
    assert (predicted == FashionMNISTMini().labels("test")).double().mean() >= 0.9  # the 512 embedded images


def test_set_scores_do_not_depend_on_the_executor_or_the_shards(tmp_path, models):
    common = dict(methods=["mean-fill"], masks=["random"], n_images=21, models_dir=str(models),
                  metrics=["class-acc", "fid-fmnist", "kid-fmnist"])
    run(RunConfig(out=tmp_path / "a", **common), show_progress=False)
    run(RunConfig(out=tmp_path / "b", executor="processes", executor_options={"workers": 2}, shard_size=5, **common),
        show_progress=False)
    a, b = (benchkit.load_results(tmp_path / x, level="set") for x in "ab")
    # merged from 5 shard states (sums for FID, features for KID) against one whole-cell state: equal
    # up to the rounding of the features of batches of other sizes and of the float64 sums
    np.testing.assert_allclose(a[["fid-fmnist", "kid-fmnist"]], b[["fid-fmnist", "kid-fmnist"]], rtol=1e-6)
    assert benchkit.load_results(tmp_path / "a")["class-acc"].equals(benchkit.load_results(tmp_path / "b")["class-acc"])
