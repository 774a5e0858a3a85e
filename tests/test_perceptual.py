"""FID/KID distances against closed forms and hand computations; the Inception-v3 and LPIPS networks
against the reference implementations with the same random weights; the weights files' loading,
checksums and errors."""
from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pytest
import scipy.linalg
import torch

from benchkit.builtins.metrics import weights as weights_module
from benchkit.builtins.metrics.feature_stats import frechet_distance, gaussian_stats, kernel_distance
from benchkit.builtins.nets.inception import FIDInception
from benchkit.builtins.nets.lpips import LPIPS
from benchkit.errors import UserError
from benchkit.plugin.interfaces import MetricContext
from benchkit.plugin.registry import Registry
from tests.reference_impls import reference


def publish(monkeypatch, name: str, path) -> None:
    """Make the file at ``path`` the published weights ``name`` for this test (its SHA-256 expected):
    every load checks the digest, so random weights under a published name are otherwise refused."""
    import dataclasses

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(weights_module.WEIGHTS, name, dataclasses.replace(weights_module.WEIGHTS[name], sha256=digest))


def random_spd(d: int, rng) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_diagonal_closed_form():
    # N(m1, diag(a)) vs N(m2, diag(b)): |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2, by hand
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, abs=1e-10)


def test_frechet_full_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for d in (2, 5, 16):
        s1, s2 = random_spd(d, rng), random_spd(d, rng)
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        root = scipy.linalg.sqrtm(s1 @ s2).real
        expected = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
        assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-8, abs=1e-8)
        assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0, abs=1e-8)


def test_frechet_of_sampled_gaussians_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    d = 3
    s1, s2 = random_spd(d, rng), random_spd(d, rng)
    m1, m2 = np.zeros(d), np.ones(d)
    x = rng.multivariate_normal(m1, s1, size=200_000)
    y = rng.multivariate_normal(m2, s2, size=200_000)
    closed = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(*gaussian_stats(x), *gaussian_stats(y)) == pytest.approx(closed, rel=0.02)
    mean, cov = gaussian_stats(x[:5])
    assert np.allclose(cov, np.cov(x[:5].T, ddof=1))  # unbiased, as FID implementations use


def test_kid_matches_a_hand_computation():
    x = np.array([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]])
    y = np.array([[1.0, 0.0], [0.5, 0.5], [-1.0, 2.0], [3.0, 1.0]])

    def k(a, b):  # cubic polynomial kernel with gamma = 1 / d, coef 1
        return (sum(p * q for p, q in zip(a, b)) / 2 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(3), 2)) / (3 * 2)
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(4), 2)) / (4 * 3)
    xy = sum(k(a, b) for a in x for b in y) / (3 * 4)
    assert kernel_distance(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_unbiased_on_subsets_of_one_distribution():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    shifted = y + 0.5
    same = kernel_distance(x, y, subsets=50, subset_size=500, seed=0)
    assert abs(same) < 0.01  # an unbiased estimate of 0: small, either sign
    assert kernel_distance(x, shifted, subsets=50, subset_size=500, seed=0) > 10 * abs(same) + 0.01


def _calibrated(net: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Random weights with batch-norm statistics taken from ``x`` (so activations keep a unit scale)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.train()
    with torch.no_grad():
        net(x)
    return net.eval()


def test_inception_matches_pytorch_fid_with_the_same_random_weights(monkeypatch, tmp_path):
    fid_module = reference("pytorch_fid.inception")
    torch.manual_seed(0)
    images = torch.rand(10, 3, 40, 48)  # more than one CPU chunk
    ours = _calibrated(FIDInception(), torch.rand(4, 3, 64, 64))
    state = ours.state_dict() | {"fc.weight": torch.randn(1008, 2048), "fc.bias": torch.randn(1008)}
    monkeypatch.setattr(fid_module, "load_state_dict_from_url", lambda *a, **k: state)  # their download
    theirs = fid_module.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    with torch.no_grad():
        expected = theirs(images)[0].flatten(1)
        got = ours(images)
    assert got.shape == (10, 2048)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max())
    # the same state dict, written as the published file is, loads through the fid metric
    torch.save(state, tmp_path / weights_module.WEIGHTS["inception-fid"].filename)
    publish(monkeypatch, "inception-fid", tmp_path / weights_module.WEIGHTS["inception-fid"].filename)
    metric = Registry().create("metric", "fid")
    metric.setup(MetricContext("x", torch.device("cpu"), (3, 40, 48), weights_dir=tmp_path))
    with torch.no_grad():
        assert torch.allclose(metric.features(images), expected, rtol=1e-4, atol=1e-5 * expected.abs().max())


@pytest.mark.parametrize("backbone", ["alex", "vgg"])
def test_lpips_matches_the_reference_with_the_same_random_weights(backbone, tmp_path, monkeypatch):
    lpips = reference("lpips")
    torch.manual_seed(1)
    theirs = lpips.LPIPS(pretrained=False, net=backbone, pnet_rand=True, verbose=False).eval()
    for i in range(5):  # calibration weights are non-negative in the published files
        getattr(theirs, f"lin{i}").model[1].weight.data.uniform_(0, 1)
    ours = LPIPS(backbone).eval()
    features = {f"{k.split('.', 2)[2]}": v for k, v in theirs.state_dict().items() if k.startswith("net.slice")}
    ours.features.load_state_dict(features)
    lins = {k: v for k, v in theirs.state_dict().items() if k.startswith("lin")}
    ours.load_state_dict(lins, strict=False)
    a, b = torch.rand(10, 3, 64, 64), torch.rand(10, 3, 64, 64)  # more than one CPU chunk
    with torch.no_grad():
        expected = theirs(a * 2 - 1, b * 2 - 1).flatten()  # the reference takes [-1, 1]
        got = ours(a, b)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert torch.all(got > 0) and torch.allclose(ours(a, a), torch.zeros(10))
    # the files as published (torchvision's backbone with its classifier, the calibration file) load
    # through the metric, which then scores gray and colour images like the reference
    backbone_name = "alexnet" if backbone == "alex" else "vgg16"
    published = {f"features.{k}": v for k, v in features.items()} | {"classifier.1.weight": torch.randn(4, 4)}
    torch.save(published, tmp_path / weights_module.WEIGHTS[backbone_name].filename)
    torch.save(lins, tmp_path / weights_module.WEIGHTS[f"lpips-{backbone}"].filename)
    for name in (backbone_name, f"lpips-{backbone}"):
        publish(monkeypatch, name, tmp_path / weights_module.WEIGHTS[name].filename)
    metric = Registry().create("metric", f"lpips-{backbone}")
    metric.setup(MetricContext("x", torch.device("cpu"), (3, 64, 64), weights_dir=tmp_path))
    known = torch.zeros(10, 1, 64, 64, dtype=torch.bool)
    assert torch.allclose(metric.score(a, b, known).float(), expected, rtol=1e-5, atol=1e-7)
    gray_a, gray_b = a[:, :1], b[:, :1]
    with torch.no_grad():
        gray_expected = theirs(gray_a.expand(-1, 3, -1, -1) * 2 - 1, gray_b.expand(-1, 3, -1, -1) * 2 - 1).flatten()
    assert torch.allclose(metric.score(gray_a, gray_b, known).float(), gray_expected, rtol=1e-5, atol=1e-7)


def test_missing_weights_name_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    metric = Registry().create("metric", "fid")
    with pytest.raises(UserError, match="benchkit weights download inception-fid"):
        metric.setup(MetricContext("x", torch.device("cpu"), (3, 32, 32), weights_dir=tmp_path))


class Payload:  # an object that is not a tensor: weights_only refuses to unpickle it
    pass


def test_corrupt_or_pickled_weights_are_refused(tmp_path, monkeypatch):
    path = tmp_path / weights_module.WEIGHTS["lpips-alex"].filename
    path.write_bytes(b"not a torch file")
    publish(monkeypatch, "lpips-alex", path)
    with pytest.raises(UserError, match="unreadable"):
        weights_module.load_state_dict("lpips-alex", tmp_path)
    torch.save({"lin0.model.1.weight": Payload()}, path)
    publish(monkeypatch, "lpips-alex", path)
    with pytest.raises(UserError, match="unreadable"):
        weights_module.load_state_dict("lpips-alex", tmp_path)
    torch.save({"lin0.model.1.weight": "text"}, path)
    publish(monkeypatch, "lpips-alex", path)
    with pytest.raises(UserError, match="not a state dict"):
        weights_module.load_state_dict("lpips-alex", tmp_path)
    torch.save({"lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, path)  # wrong shape for lin0 (64 channels)
    with pytest.raises(UserError, match="do not fit"):
        weights_module.load_into(LPIPS("alex").lin0, {"model.1.weight": torch.zeros(1, 3, 1, 1)}, "lpips-alex")


def test_download_checks_the_sha256(tmp_path, monkeypatch, capsys):
    from benchkit.cli import main

    source = tmp_path / "served.pth"
    torch.save({"w": torch.arange(3.0)}, source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    good = weights_module.WeightsFile("lpips-alex", "lpips-v0.1-alex.pth", source.as_uri(), digest, "1 kB", "t")
    monkeypatch.setitem(weights_module.WEIGHTS, "lpips-alex", good)
    target = tmp_path / "w"
    assert main(["weights", "download", "lpips-alex", "--weights-dir", str(target)]) == 0
    assert (target / "lpips-v0.1-alex.pth").read_bytes() == source.read_bytes()
    bad = weights_module.WeightsFile("lpips-vgg", "lpips-v0.1-vgg.pth", source.as_uri(), "0" * 64, "1 kB", "t")
    monkeypatch.setitem(weights_module.WEIGHTS, "lpips-vgg", bad)
    assert main(["weights", "download", "lpips-vgg", "--weights-dir", str(target)]) == 2
    assert "wrong SHA-256" in capsys.readouterr().err
    assert sorted(p.name for p in target.iterdir()) == ["lpips-v0.1-alex.pth"]  # nothing partial left


def test_clean_fid_resize_is_pil_bicubic_in_float_per_channel():
    """fid-clean's resize equals PIL's bicubic resize of each channel on the 0-255 scale in float32,
    clipped and never quantised (clean-fid's ``cleanfid/resize.py``), pixel for pixel."""
    from PIL import Image

    from benchkit.builtins.metrics.perceptual import clean_resize

    images = torch.from_numpy(np.random.default_rng(0).random((2, 3, 37, 23)).astype(np.float32))
    out = clean_resize(images)
    assert out.shape == (2, 3, 299, 299) and out.dtype == torch.float32
    for n in range(2):
        for c in range(3):
            channel = Image.fromarray(images[n, c].numpy() * np.float32(255), mode="F")
            expected = np.asarray(channel.resize((299, 299), Image.Resampling.BICUBIC)).clip(0, 255) / 255
            np.testing.assert_array_equal(out[n, c].numpy(), expected.astype(np.float32))
    quantised = np.asarray(Image.fromarray((images[0, 0].numpy() * 255).round().astype(np.uint8)).resize(
        (299, 299), Image.Resampling.BICUBIC)) / 255
    assert not np.allclose(out[0, 0].numpy(), quantised, atol=1e-4)  # no 8-bit step in between


def test_fid_variants_record_their_resize_and_features_with_the_scores(tmp_path, monkeypatch):
    from benchkit.run.runner import RunConfig, run

    torch.manual_seed(0)
    weights = tmp_path / "weights"
    weights.mkdir()
    state = _calibrated(FIDInception(), torch.rand(4, 3, 64, 64)).state_dict()
    torch.save(state | {"fc.weight": torch.randn(1008, 2048), "fc.bias": torch.randn(1008)},
               weights / weights_module.WEIGHTS["inception-fid"].filename)
    publish(monkeypatch, "inception-fid", weights / weights_module.WEIGHTS["inception-fid"].filename)
    out = tmp_path / "R"
    run(RunConfig(methods=["mean-fill"], masks=["center"], n_images=6, metrics=["fid", "fid-clean"], out=out,
                  weights_dir=str(weights)), Registry(block_external=True), show_progress=False)
    import json

    import benchkit

    sets = benchkit.load_results(out, level="set")
    assert sets[["fid", "fid-clean"]].notna().all().all() and sets["fid"].iloc[0] != sets["fid-clean"].iloc[0]
    about = json.loads((out / "manifest.json").read_text())["display"]["metrics"]
    assert about["fid"]["about"]["variant"] == "pytorch-fid" and "bilinear" in about["fid"]["about"]["resize"]
    clean = about["fid-clean"]["about"]
    assert clean["variant"] == "clean-fid" and "PIL bicubic" in clean["resize"]


def test_other_weights_under_a_published_name_stop_the_run_before_anything_is_written(tmp_path, capsys):
    from benchkit.cli import main

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    state = FIDInception().state_dict() | {"fc.weight": torch.randn(1008, 2048), "fc.bias": torch.randn(1008)}
    path = weights / weights_module.WEIGHTS["inception-fid"].filename
    torch.save(state, path)  # a random Inception under the published name
    code = main(["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "4", "--metrics", "psnr,fid",
                 "--weights-dir", str(weights), "--out", str(tmp_path / "R")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"weights file {path} has SHA-256" in err
    assert "not the published 6726825d" in err and not (tmp_path / "R").exists()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads((weights / (path.name + ".sha256")).read_text())["sha256"] == digest  # kept for next time
    assert weights_module.file_sha256(path) == digest
    path.write_bytes(path.read_bytes()[:-1] + b"x")  # changed: its size is the same, its time is not
    assert weights_module.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest() != digest


def test_the_lpips_wheel_s_calibration_files_are_the_published_ones(tmp_path):
    """The offline route of the evaluation guide: lpips ships alex.pth and vgg.pth, whose bytes are
    the published files' (their SHA-256 is checked on load)."""
    import importlib.util
    import shutil
    from pathlib import Path

    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lpips is not installed")
    shipped = Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1"
    for backbone in ("alex", "vgg"):
        shutil.copy(shipped / f"{backbone}.pth", tmp_path / weights_module.WEIGHTS[f"lpips-{backbone}"].filename)
        state = weights_module.load_state_dict(f"lpips-{backbone}", tmp_path)
        assert sorted(state) == [f"lin{i}.model.1.weight" for i in range(5)]
