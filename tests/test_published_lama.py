"""``lama:DIR``: LaMa's FFC generator against the FFT written out by hand and the paper's parameter
counts, its checkpoint read without unpickling code, and LaMa's prediction procedure written out."""
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from published_fixtures import Payload, lama_generator_config, make_lama_folder

import benchkit
from benchkit.builtins.nets.ffc import FFCResNetGenerator, FourierUnit
from benchkit.cli import main

pytest.importorskip("omegaconf")


def _dft(n: int) -> np.ndarray:
    k = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(k, k) / n) / np.sqrt(n)  # orthonormal


def test_fourier_unit_is_the_real_fft_convolved_and_inverted_as_written_out():
    torch.manual_seed(0)
    unit = FourierUnit(3).eval()
    unit.bn.running_mean.uniform_(-0.2, 0.2)
    unit.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 6, 8)
    with torch.no_grad():
        got = unit(x).double().numpy()
    h, w = 6, 8
    spectrum = np.einsum("kh,bchw,lw->bckl", _dft(h), x.double().numpy(), _dft(w))[..., : w // 2 + 1]
    parts = np.stack([spectrum.real, spectrum.imag], axis=2).reshape(2, 6, h, w // 2 + 1)  # re, im per channel
    weight = unit.conv_layer.weight.detach().double().numpy()[:, :, 0, 0]
    bn = unit.bn
    mixed = np.einsum("oc,bchw->bohw", weight, parts)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    mixed = (mixed - bn.running_mean.double().numpy()[:, None, None]) * scale[:, None, None] \
        + bn.bias.detach().double().numpy()[:, None, None]
    mixed = np.maximum(mixed, 0).reshape(2, 3, 2, h, w // 2 + 1)
    half = mixed[:, :, 0] + 1j * mixed[:, :, 1]
    full = np.zeros((2, 3, h, w), dtype=complex)  # the Hermitian extension of the half spectrum
    full[..., : w // 2 + 1] = half
    for col in range(w // 2 + 1, w):
        full[..., col] = np.conj(half[..., (-np.arange(h)) % h, w - col])
    inverse = np.einsum("kh,bckl,lw->bchw", _dft(h).conj(), full, _dft(w).conj()).real
    np.testing.assert_allclose(got, inverse, rtol=1e-4, atol=1e-5)


def test_big_lama_and_lama_fourier_have_the_papers_parameter_counts():
    # Suvorov et al. (WACV 2022), Table 1: LaMa-Fourier 27M parameters (9 blocks), Big LaMa 51M (18)
    import yaml

    from benchkit.builtins.published.lama import build_generator

    for blocks, millions in ((9, 27), (18, 51)):
        section = yaml.safe_load(lama_generator_config(ngf=64, blocks=blocks))
        with torch.device("meta"):
            generator = build_generator(_resolved(section), "config.yaml")
        count = sum(p.numel() for p in generator.parameters()) / 1e6
        assert round(count) == millions, count


def _resolved(section: dict) -> dict:
    from pathlib import Path

    from benchkit.builtins.published.lama import _resolve

    return _resolve({"generator": section}, {"generator": section}, Path("config.yaml"))["generator"]


def test_the_checkpoint_loads_strictly_and_predicts_as_lama_s_procedure_written_out(tmp_path):
    folder, generator = make_lama_folder(tmp_path)
    from benchkit.builtins.published.lama import LamaInpainter

    method = LamaInpainter(str(folder))
    method.load(torch.device("cpu"))
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.random((3, 3, 21, 30), dtype=np.float32))
    known = torch.from_numpy(rng.random((3, 1, 21, 30)) > 0.3)
    got = method.inpaint(images * known, known)
    # bin/predict.py: mask 1 = hole, both padded symmetrically at the end to a multiple of 8,
    # cat(image * (1 - mask), mask), the generator, cropped back
    hole = (~known).float().numpy()
    pad = ((0, 0), (0, 0), (0, 3), (0, 2))
    image = torch.from_numpy(np.pad((images * known).numpy(), pad, mode="symmetric"))
    mask = torch.from_numpy(np.pad(hole, pad, mode="symmetric"))
    with torch.no_grad():
        expected = generator(torch.cat([image * (1 - mask), mask], dim=1))[..., :21, :30]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    alone = torch.cat([method.inpaint(images[i:i + 1] * known[i:i + 1], known[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(alone, got, rtol=1e-5, atol=1e-6)


def test_a_run_composites_keys_the_files_and_info_prints_the_model_card(tmp_path, capsys):
    folder, _ = make_lama_folder(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    run = ["run", "--methods", f"lama:{folder}[name=big],telea", "--datasets", f"folder:{photos}", "--masks", "center",
           "--metrics", "psnr,known-l1", "--out", str(tmp_path / "R")]
    assert main(run) == 0, capsys.readouterr().err
    df = benchkit.load_results(tmp_path / "R")
    assert set(df.method) == {"big", "telea"} and np.isfinite(df.psnr).all()
    cells = [json.loads(p.read_text()) for p in (tmp_path / "R" / "cells").glob("*.json")]
    cell = next(c for c in cells if c["settings"].get("input_files"))
    import hashlib

    files = cell["settings"]["input_files"]
    assert files[str(folder / "models" / "best.ckpt")] == hashlib.sha256(
        (folder / "models" / "best.ckpt").read_bytes()).hexdigest()
    assert str(folder / "config.yaml") in files
    provenance = cell["settings"]["provenance"]  # which loader, convention and libraries made the row
    assert provenance["loader"] == "lama (benchkit.builtins.published.lama)"
    assert provenance["convention"].startswith("mask 1 = hole") and f"torch {torch.__version__}" in \
        provenance["libraries"]
    capsys.readouterr()
    assert main(["info", f"lama:{folder}"]) == 0
    out = capsys.readouterr().out
    assert "LaMa ffc_resnet: 2 blocks" in out and "mask 1 = hole" in out and "sha256" in out


def test_a_pickled_payload_never_runs_and_every_refusal_is_one_line(tmp_path, capsys):
    proof = tmp_path / "ran"
    folder, _ = make_lama_folder(tmp_path, extra_checkpoint={"hook": Payload(proof)})
    mat = tmp_path / "mat" / "models"  # MAT-style: a bare pickle in place of the checkpoint
    mat.mkdir(parents=True)
    (tmp_path / "mat" / "config.yaml").write_text((folder / "config.yaml").read_text())
    (mat / "best.ckpt").write_bytes(pickle.dumps({"G_ema": Payload(proof)}))
    other = tmp_path / "regular"
    (other / "models").mkdir(parents=True)
    (other / "config.yaml").write_text("generator:\n  kind: pix2pixhd_multidilated\n")
    (other / "models" / "best.ckpt").write_bytes((folder / "models" / "best.ckpt").read_bytes())
    cases = ((folder, "which would run code when loaded: benchkit never unpickles code"),
             (tmp_path / "mat", "is a bare pickle (as MAT's and StyleGAN's .pkl files are)"),
             (other, "generator kind 'pix2pixhd_multidilated' (lama-regular) is not supported"),
             (tmp_path / "none", "does not exist"))
    for path, message in cases:
        assert main(["run", "--methods", f"lama:{path}", "--masks", "center", "--n-images", "2",
                     "--out", str(tmp_path / "R")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
        assert not (tmp_path / "R").exists()
    assert not proof.exists()


def test_a_config_that_does_not_match_the_checkpoint_names_the_first_key(tmp_path, capsys):
    folder, _ = make_lama_folder(tmp_path)
    text = (folder / "config.yaml").read_text().replace("n_blocks: 2", "n_blocks: 3")
    (folder / "config.yaml").write_text(text)
    assert main(["run", "--methods", f"lama:{folder}", "--masks", "center", "--n-images", "2",
                 "--out", str(tmp_path / "R")]) == 2
    assert "first mismatched key 'generator.model." in capsys.readouterr().err
    folder, _ = make_lama_folder(tmp_path / "lfu", lfu=True)
    assert main(["run", "--methods", f"lama:{folder}", "--masks", "center", "--n-images", "2",
                 "--out", str(tmp_path / "R")]) == 2
    assert "resnet_conv_kwargs.enable_lfu is true" in capsys.readouterr().err


def test_generator_state_dict_keys_are_laid_out_as_the_published_checkpoints():
    # big-lama's keys, as LaMa's module tree names them: first FFC, a residual block's spectral
    # transform, the transposed convolutions and the last convolution
    generator = FFCResNetGenerator(4, 3, 64, 3, 18, "sigmoid", init_conv_kwargs={"ratio_gin": 0, "ratio_gout": 0},
                                   downsample_conv_kwargs={"ratio_gin": 0, "ratio_gout": 0},
                                   resnet_conv_kwargs={"ratio_gin": 0.75, "ratio_gout": 0.75, "enable_lfu": False})
    keys = set(generator.state_dict())
    for key in ("model.1.ffc.convl2l.weight", "model.1.bn_l.running_var", "model.4.ffc.convl2g.weight",
                "model.4.bn_g.weight", "model.5.conv1.ffc.convg2g.conv1.0.weight",
                "model.5.conv1.ffc.convg2g.conv1.1.running_mean", "model.5.conv1.ffc.convg2g.fu.conv_layer.weight",
                "model.5.conv1.ffc.convg2g.fu.bn.weight", "model.22.conv2.ffc.convg2g.conv2.weight",
                "model.24.weight", "model.24.bias", "model.25.running_mean", "model.34.weight", "model.34.bias"):
        assert key in keys, key
    assert generator.state_dict()["model.5.conv1.ffc.convg2g.fu.conv_layer.weight"].shape == (384, 384, 1, 1)
    assert not any(".lfu." in k for k in keys) and "model.35.weight" not in keys
