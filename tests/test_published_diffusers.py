"""``diffusers:DIR``: a tiny Stable Diffusion inpainting pipeline saved with ``save_pretrained``,
loaded offline with sockets blocked, against the pipeline called directly."""
import json
import socket

import numpy as np
import pytest
import torch
from PIL import Image
from published_fixtures import make_sd_inpaint_folder

import benchkit
from benchkit.cli import main

pytest.importorskip("diffusers")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    return make_sd_inpaint_folder(tmp_path_factory.mktemp("sd"))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _photos(root, n=3):
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    return photos


def test_the_pipeline_gets_its_convention_a_generator_per_image_and_batches_alike(pipeline_folder, no_network):
    from diffusers import StableDiffusionInpaintPipeline

    from benchkit.builtins.published.diffusion import DiffusersInpainter

    method = DiffusersInpainter(str(pipeline_folder), prompt="a shirt", steps=2)
    assert method.convention.multiple == 2  # the tiny VAE has two blocks: scale 2 (Stable Diffusion's: 8)
    method.seed = 3
    method.load(torch.device("cpu"))
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.random((2, 3, 21, 30), dtype=np.float32))
    known = torch.from_numpy(rng.random((2, 1, 21, 30)) > 0.3)
    got = method.inpaint(images * known, known, mask="center", image_ids=[4, 7])
    # written out: symmetric padding to 22 x 30, white = repaint, one generator per image seeded
    # seed * 1_000_003 + id, the pipeline's own output, cropped back
    pad = ((0, 0), (0, 0), (0, 1), (0, 0))
    image = torch.from_numpy(np.pad((images * known).numpy(), pad, mode="symmetric"))
    hole = torch.from_numpy(np.pad((~known).float().numpy(), pad, mode="symmetric"))
    pipe = StableDiffusionInpaintPipeline.from_pretrained(pipeline_folder, local_files_only=True)
    out = pipe(prompt=["a shirt"] * 2, image=image * (1 - hole), mask_image=hole, height=22, width=30,
               num_inference_steps=2, output_type="pt",
               generator=[torch.Generator().manual_seed(3 * 1_000_003 + i) for i in (4, 7)]).images
    torch.testing.assert_close(got, out[..., :21, :30], rtol=1e-4, atol=1e-4)
    alone = method.inpaint(images[1:] * known[1:], known[1:], mask="center", image_ids=[7])
    torch.testing.assert_close(alone, got[1:], rtol=1e-4, atol=1e-4)


def test_a_run_with_prompts_keys_every_file_and_is_offline(pipeline_folder, tmp_path, capsys, no_network):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("id,prompt\n0,a red shirt\n2,a coat\n")
    spec = f"diffusers:{pipeline_folder}[prompt=a shirt,prompts={prompts},steps=2,name=sd]"
    run = ["run", "--methods", f"{spec},telea", "--datasets", f"folder:{_photos(tmp_path)}[size=24]",
           "--masks", "center", "--metrics", "psnr,known-l1", "--out", str(tmp_path / "R")]
    assert main(run) == 0, capsys.readouterr().err
    df = benchkit.load_results(tmp_path / "R")
    assert set(df.method) == {"sd", "telea"} and np.isfinite(df.psnr).all()
    assert (df[df.method == "sd"]["known-l1"] > 0).all()  # the VAE round trip changes the known pixels
    cells = [json.loads(p.read_text()) for p in (tmp_path / "R" / "cells").glob("*.json")]
    files = next(c for c in cells if c["settings"].get("input_files"))["settings"]["input_files"]
    assert str(pipeline_folder / "unet" / "diffusion_pytorch_model.safetensors") in files
    assert str(pipeline_folder / "model_index.json") in files and str(prompts) in files


def test_a_missing_component_or_an_unknown_pipeline_is_one_line(pipeline_folder, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(pipeline_folder, broken)
    shutil.rmtree(broken / "unet")
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    for folder, message in ((broken, "lacks the component 'unet' that model_index.json names"),
                            (other, "holds a StableDiffusionPipeline: diffusers: runs"),
                            (tmp_path / "none", "does not exist")):
        assert main(["run", "--methods", f"diffusers:{folder}", "--masks", "center", "--n-images", "2",
                     "--out", str(tmp_path / "R")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / "R").exists()


def test_the_issue_s_command_gives_one_table_with_every_published_family(pipeline_folder, tmp_path, capsys,
                                                                         no_network):
    # lama:, onnx: (MI-GAN's layout), torchscript:, diffusers: and a classical method, on photographs
    # scikit-image bundles, thick and MAT's large masks: every model's row in one table
    skimage_data = pytest.importorskip("skimage.data")
    pytest.importorskip("onnxruntime")
    from published_fixtures import make_lama_folder
    from test_published_onnx import migan_echo
    from test_published_torchscript import TWO_INPUTS, _script

    photos = tmp_path / "places-val"
    photos.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(skimage_data, name)()).save(photos / f"{name}.png")
    lama, _ = make_lama_folder(tmp_path)
    migan = migan_echo(tmp_path / "migan_pipeline_v2.onnx")
    script = _script(tmp_path, TWO_INPUTS, "big-lama")
    methods = (f"lama:{lama}[name=lama],onnx:{migan}[family=migan,name=migan],"
               f"torchscript:{script}[trusted=true,name=lama-jit],diffusers:{pipeline_folder}[steps=2,name=sd],telea")
    run = ["run", "--datasets", f"folder:{photos}[size=48]", "--masks", "thick,mat-large", "--methods", methods,
           "--metrics", "psnr,ssim,known-psnr", "--out", str(tmp_path / "R")]
    assert main(run) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for row in ("lama", "migan", "lama-jit", "sd", "telea"):
        assert f"| {row} " in out
    df = benchkit.load_results(tmp_path / "R")
    assert len(df) == 5 * 2 * 4 and np.isfinite(df.psnr).all()


def test_the_crop_strategy_gives_each_window_its_image_s_generator(pipeline_folder, no_network):
    from benchkit.builtins.published.diffusion import DiffusersInpainter

    whole = DiffusersInpainter(str(pipeline_folder), steps=2)
    cropped = DiffusersInpainter(str(pipeline_folder), steps=2, strategy="crop", margin=4)
    for method in (whole, cropped):
        method.seed = 1
        method.load(torch.device("cpu"))
    images = torch.rand(2, 3, 40, 40)
    known = torch.ones(2, 1, 40, 40, dtype=torch.bool)
    known[..., 20:28, 20:28] = False  # one window, rows and columns 16:32
    got = cropped.inpaint(images * known, known, image_ids=[5, 6])
    outside = torch.ones_like(known)
    outside[..., 16:32, 16:32] = False
    torch.testing.assert_close(got * outside, images * known * outside)  # the model never saw those pixels
    window = (slice(None), slice(None), slice(16, 32), slice(16, 32))
    expected = whole.inpaint((images * known)[window], known[window], image_ids=[5, 6])
    torch.testing.assert_close(got[window], expected, rtol=1e-4, atol=1e-4)


def test_an_sdxl_inpainting_pipeline_is_routed_and_equals_the_pipeline_called_directly(tmp_path, no_network):
    from diffusers import StableDiffusionXLInpaintPipeline
    from published_fixtures import make_sdxl_inpaint_folder

    from benchkit.builtins.published.diffusion import DiffusersInpainter

    folder = make_sdxl_inpaint_folder(tmp_path)
    method = DiffusersInpainter(str(folder), prompt="a coat", steps=2)
    assert method.pipeline_class == "StableDiffusionXLInpaintPipeline" and method.convention.multiple == 2
    method.seed = 0
    method.load(torch.device("cpu"))
    images, known = torch.rand(2, 3, 32, 32), torch.ones(2, 1, 32, 32, dtype=torch.bool)
    known[..., 8:24, 8:24] = False
    got = method.inpaint(images * known, known, image_ids=[0, 1])
    pipe = StableDiffusionXLInpaintPipeline.from_pretrained(folder, local_files_only=True)
    expected = pipe(prompt=["a coat"] * 2, image=images * known, mask_image=(~known).float(), height=32, width=32,
                    num_inference_steps=2, output_type="pt",
                    generator=[torch.Generator().manual_seed(i) for i in (0, 1)]).images
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_a_flux_fill_pipeline_is_routed_with_its_size_rule_and_refuses_a_negative_prompt(tmp_path, no_network,
                                                                                        capsys):
    from diffusers import FluxFillPipeline
    from published_fixtures import make_flux_fill_folder

    from benchkit.builtins.published.diffusion import DiffusersInpainter

    folder = make_flux_fill_folder(tmp_path)
    method = DiffusersInpainter(str(folder), prompt="a coat", steps=2)
    # the tiny VAE has one block (scale 1), FLUX packs 2 x 2: multiples of 2 (FLUX.1 Fill's own VAE: 16)
    assert method.pipeline_class == "FluxFillPipeline" and method.convention.multiple == 2
    method.seed = 0
    method.load(torch.device("cpu"))
    images, known = torch.rand(2, 3, 31, 32), torch.ones(2, 1, 31, 32, dtype=torch.bool)
    known[..., 8:24, 8:24] = False
    got = method.inpaint(images * known, known, image_ids=[0, 1])
    pipe = FluxFillPipeline.from_pretrained(folder, local_files_only=True)
    image = torch.from_numpy(np.pad((images * known).numpy(), ((0, 0), (0, 0), (0, 1), (0, 0)), mode="symmetric"))
    hole = torch.from_numpy(np.pad((~known).float().numpy(), ((0, 0), (0, 0), (0, 1), (0, 0)), mode="symmetric"))
    expected = pipe(prompt=["a coat"] * 2, image=image * (1 - hole), mask_image=hole, height=32, width=32,
                    num_inference_steps=2, output_type="pt",
                    generator=[torch.Generator().manual_seed(i) for i in (0, 1)]).images[..., :31, :]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    capsys.readouterr()
    assert main(["run", "--methods", f"diffusers:{folder}[negative_prompt=blurry]", "--masks", "center",
                 "--n-images", "2", "--out", str(tmp_path / "R")]) == 2
    assert "FluxFillPipeline takes no negative_prompt: drop negative_prompt=" in capsys.readouterr().err


def test_kandinsky_2_2_gets_signed_images_one_at_a_time_and_its_squared_size_rule(tmp_path, no_network):
    from diffusers import KandinskyV22InpaintCombinedPipeline
    from published_fixtures import make_kandinsky_inpaint_folder

    from benchkit.builtins.published.diffusion import DiffusersInpainter

    folder = make_kandinsky_inpaint_folder(tmp_path)
    method = DiffusersInpainter(str(folder), prompt="a coat", steps=2)
    # the tiny MoVQ has two blocks (scale 2); Kandinsky rounds latents up to whole multiples of the
    # scale, so sides are multiples of its square (the published MoVQ: 8, so 64)
    assert method.convention.multiple == 4
    method.seed = 0
    method.load(torch.device("cpu"))
    images, known = torch.rand(2, 3, 14, 16), torch.ones(2, 1, 14, 16, dtype=torch.bool)
    known[..., 4:10, 4:12] = False
    got = method.inpaint(images * known, known, image_ids=[0, 1])
    pipe = KandinskyV22InpaintCombinedPipeline.from_pretrained(folder, local_files_only=True)
    pad = ((0, 0), (0, 0), (0, 2), (0, 0))
    image = torch.from_numpy(np.pad((images * known).numpy(), pad, mode="symmetric"))
    hole = torch.from_numpy(np.pad((~known).float().numpy(), pad, mode="symmetric"))
    for i in range(2):  # written out: one image per call, in [-1, 1], the output mapped back as its "np" output
        out = pipe(prompt=["a coat"], image=image[i:i + 1] * (1 - hole[i:i + 1]) * 2 - 1, mask_image=hole[i:i + 1],
                   height=16, width=16, num_inference_steps=2, output_type="pt",
                   generator=[torch.Generator().manual_seed(i)]).images
        torch.testing.assert_close(got[i:i + 1], (out * 0.5 + 0.5).clamp(0, 1)[..., :14, :], rtol=1e-4, atol=1e-4)


def test_kandinsky_2_2_as_published_a_decoder_folder_and_its_prior(tmp_path, no_network, capsys):
    from diffusers import KandinskyV22InpaintCombinedPipeline
    from published_fixtures import make_kandinsky_inpaint_folder

    from benchkit.builtins.published.diffusion import DiffusersInpainter

    combined_folder = make_kandinsky_inpaint_folder(tmp_path)
    combined = KandinskyV22InpaintCombinedPipeline.from_pretrained(combined_folder, local_files_only=True)
    combined.decoder_pipe.save_pretrained(tmp_path / "decoder-inpaint")  # the two published repositories' layouts
    combined.prior_pipe.save_pretrained(tmp_path / "prior")
    joined = DiffusersInpainter(str(tmp_path / "decoder-inpaint"), prior=str(tmp_path / "prior"), steps=2)
    whole = DiffusersInpainter(str(combined_folder), steps=2)
    images, known = torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16, dtype=torch.bool)
    known[..., 4:12, 4:12] = False
    for method in (joined, whole):
        method.seed = 0
        method.load(torch.device("cpu"))
    torch.testing.assert_close(joined.inpaint(images * known, known, image_ids=[3]),
                               whole.inpaint(images * known, known, image_ids=[3]))
    assert str(tmp_path / "prior" / "model_index.json") in map(str, joined.files)
    for spec, message in ((f"diffusers:{tmp_path / 'decoder-inpaint'}", "add prior=DIR"),
                          (f"diffusers:{tmp_path / 'decoder-inpaint'}[prior={combined_folder}]",
                           "not a KandinskyV22PriorPipeline")):
        assert main(["run", "--methods", spec, "--masks", "center", "--n-images", "2",
                     "--out", str(tmp_path / "R")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
