"""fd-dinov2, clip-score, known-mse and known-lpips against independent references: transformers
called directly with dgm-eval's preprocessing written out, scipy's sqrtm, torchmetrics' clip_score,
the lpips package and hand computations, all with random weights in the published file layouts."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from benchkit.builtins.metrics import weights as weights_module
from benchkit.plugin.interfaces import MetricContext
from benchkit.plugin.metric import Batch
from benchkit.plugin.registry import Registry
from tests.published_fixtures import clip_tokenizer
from tests.reference_impls import reference, usable_torchvision

usable_torchvision()
transformers = pytest.importorskip("transformers")


def tiny_dinov2():
    """A random Dinov2Model shaped as DINOv2's are (64 numbers per head), small."""
    torch.manual_seed(0)
    config = transformers.Dinov2Config(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=512, patch_size=14, image_size=28, layerscale_value=0.5)
    model = transformers.Dinov2Model(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)  # layer scales and norms away from their init
    return model


def hub_state(model) -> dict[str, torch.Tensor]:
    """The model's weights as torch hub's dinov2_vitl14_pretrain.pth lays them out (facebookresearch/
    dinov2 ``vision_transformer.py``: blocks.N with a fused qkv, ls1/ls2.gamma, norm)."""
    state = model.state_dict()
    v5 = "encoder.layer.0.attention.q_proj.weight" in state  # transformers 5's names, else 4's
    q, k, v, o = (("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj") if v5 else
                  ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                   "attention.output.dense"))
    out = {"cls_token": state["embeddings.cls_token"], "mask_token": state["embeddings.mask_token"],
           "pos_embed": state["embeddings.position_embeddings"],
           "patch_embed.proj.weight": state["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": state["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": state["layernorm.weight"], "norm.bias": state["layernorm.bias"]}
    for i in range(model.config.num_hidden_layers):
        layer, block = f"encoder.layer.{i}.", f"blocks.{i}."
        for leaf in ("weight", "bias"):
            out[f"{block}attn.qkv.{leaf}"] = torch.cat([state[f"{layer}{n}.{leaf}"] for n in (q, k, v)])
            out[f"{block}attn.proj.{leaf}"] = state[f"{layer}{o}.{leaf}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[f"{block}{name}.{leaf}"] = state[f"{layer}{name}.{leaf}"]
        out[f"{block}ls1.gamma"] = state[f"{layer}layer_scale1.lambda1"]
        out[f"{block}ls2.gamma"] = state[f"{layer}layer_scale2.lambda1"]
    return out


def dgm_eval_features(model, images: torch.Tensor) -> torch.Tensor:
    """dgm-eval's DINOv2 encoder written out: 8-bit RGB image, torchvision's Resize((224, 224),
    BICUBIC) on the PIL image (PIL's bicubic), ToTensor, ImageNet Normalize, the model's output (the
    class token after the final norm)."""
    rows = []
    for image in images:
        pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        x = np.asarray(pil.resize((224, 224), Image.BICUBIC), dtype=np.float32) / 255
        x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
        rows.append(torch.from_numpy(x.transpose(2, 0, 1)).float())
    with torch.no_grad():
        return model(pixel_values=torch.stack(rows)).pooler_output


def _setup(name, weights_dir):
    metric = Registry().create("metric", name)
    metric.setup(MetricContext("x", torch.device("cpu"), (3, 40, 40), weights_dir=weights_dir))
    return metric


def test_fd_dinov2_reads_both_published_layouts_and_is_the_frechet_distance_of_dgm_eval_features(tmp_path):
    model = tiny_dinov2()
    hf, hub = tmp_path / "hf", tmp_path / "hub"
    model.save_pretrained(hf / "dinov2-large", safe_serialization=True)
    hub.mkdir()
    torch.save(hub_state(model), hub / "dinov2_vitl14_pretrain.pth")
    rng = np.random.default_rng(0)
    fake = torch.from_numpy(rng.random((12, 3, 40, 40), dtype=np.float32))
    real = torch.from_numpy(rng.random((12, 3, 40, 40), dtype=np.float32))
    expected = dgm_eval_features(model, fake)
    from_hf, from_hub = _setup("fd-dinov2", hf), _setup("fd-dinov2", hub)
    torch.testing.assert_close(from_hf.features(fake), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(from_hub.features(fake), expected, rtol=1e-4, atol=1e-4)
    known = torch.ones(12, 1, 40, 40, dtype=torch.bool)
    for half in (slice(0, 5), slice(5, 12)):  # two shards, states merged as a run merges them
        from_hf.update(Batch(fake[half], real[half], known[half]))
    a, b = expected.double().numpy(), dgm_eval_features(model, real).double().numpy()
    m1, m2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    reference_fd = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert from_hf.compute() == pytest.approx(reference_fd, rel=1e-3)


def tiny_clip_folder(folder):
    """A random CLIP model and its processor saved as openai/clip-vit-large-patch14 is laid out."""
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
                     "vocab_size": 1000, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 2,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
                       "image_size": 30, "patch_size": 6},
        projection_dim=16)
    model = transformers.CLIPModel(config).eval()
    tokenizer = clip_tokenizer(folder)
    images = transformers.CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30})
    target = folder / "clip-vit-large-patch14"
    model.save_pretrained(target, safe_serialization=True)
    transformers.CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(target)
    return target


class Projected(torch.nn.Module):
    """A CLIPModel whose ``get_*_features`` give tensors: transformers 5 returns output objects (the
    projected embedding in ``pooler_output``), torchmetrics 1.9 expects the tensors transformers 4 gave."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs):
        return _tensor(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs):
        return _tensor(self.model.get_text_features(*args, **kwargs))


def _tensor(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def test_clip_score_is_torchmetrics_clip_score_per_image(tmp_path):
    usable_torchvision()
    from torchmetrics.functional.multimodal import clip_score

    folder = tiny_clip_folder(tmp_path)
    metric = _setup("clip-score", tmp_path)
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.random((4, 3, 40, 48), dtype=np.float32))
    texts = ("a red shirt", "a coat", "shoes", "a bag on a table")
    got = metric.score_batch(Batch(images, images, torch.ones(4, 1, 40, 48, dtype=torch.bool), texts=texts))
    def load():  # the same files, loaded by transformers for torchmetrics
        model = transformers.CLIPModel.from_pretrained(folder).eval()
        return Projected(model), transformers.CLIPProcessor.from_pretrained(folder)

    for image, text, value in zip(images, texts, got):
        expected = clip_score(image * 255, text, model_name_or_path=load)
        assert float(value) == pytest.approx(float(expected), rel=1e-4, abs=1e-4)
    assert (got >= 0).all()


def test_known_mse_and_known_lpips_against_a_hand_computation_and_the_lpips_package(tmp_path, monkeypatch):
    from test_perceptual import publish

    rng = np.random.default_rng(2)
    raw = torch.from_numpy(rng.random((3, 3, 64, 64), dtype=np.float32))
    target = torch.from_numpy(rng.random((3, 3, 64, 64), dtype=np.float32))
    known = torch.from_numpy(rng.random((3, 1, 64, 64)) > 0.4)
    batch = Batch(target, target, known, raw=raw)
    mse = Registry().create("metric", "known-mse").score_batch(batch)
    for i in range(3):  # by hand: squared errors of the known values, averaged over pixels and channels
        k = known[i, 0].numpy()
        errors = (raw[i].numpy() - target[i].numpy())[:, k] ** 2
        assert float(mse[i]) == pytest.approx(errors.sum() / (k.sum() * 3), rel=1e-6)
    lpips = reference("lpips")
    torch.manual_seed(1)
    theirs = lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False).eval()
    for i in range(5):
        getattr(theirs, f"lin{i}").model[1].weight.data.uniform_(0, 1)
    features = {f"features.{k.split('.', 2)[2]}": v for k, v in theirs.state_dict().items()
                if k.startswith("net.slice")}
    torch.save(features, tmp_path / weights_module.WEIGHTS["alexnet"].filename)
    torch.save({k: v for k, v in theirs.state_dict().items() if k.startswith("lin")},
               tmp_path / weights_module.WEIGHTS["lpips-alex"].filename)
    for name in ("alexnet", "lpips-alex"):
        publish(monkeypatch, name, tmp_path / weights_module.WEIGHTS[name].filename)
    metric = _setup("known-lpips", tmp_path)
    mask = known.float()
    with torch.no_grad():  # BrushBench's calculate_lpips: both images times the known mask, in [-1, 1]
        expected = theirs((raw * mask) * 2 - 1, (target * mask) * 2 - 1).flatten()
    torch.testing.assert_close(metric.score_batch(batch).float(), expected, rtol=1e-5, atol=1e-6)


def _weights(tmp_path, monkeypatch):
    """A weights folder with every file the issue's command needs, random, in the published layouts."""
    from test_perceptual import publish

    weights = tmp_path / "weights"
    tiny_dinov2().save_pretrained(weights / "dinov2-large", safe_serialization=True)
    tiny_clip_folder(weights)
    lpips = reference("lpips")
    theirs = lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False)
    torch.save({f"features.{k.split('.', 2)[2]}": v for k, v in theirs.state_dict().items()
                if k.startswith("net.slice")}, weights / weights_module.WEIGHTS["alexnet"].filename)
    torch.save({k: v.abs() for k, v in theirs.state_dict().items() if k.startswith("lin")},
               weights / weights_module.WEIGHTS["lpips-alex"].filename)
    for name in ("alexnet", "lpips-alex"):
        publish(monkeypatch, name, weights / weights_module.WEIGHTS[name].filename)
    return weights


def test_the_issue_s_command_runs_and_score_adds_the_text_and_feature_metrics(tmp_path, monkeypatch, capsys):
    import benchkit
    from benchkit.cli import main
    from tests.published_fixtures import make_sd_inpaint_folder

    weights = _weights(tmp_path, monkeypatch)
    pipeline = make_sd_inpaint_folder(tmp_path)
    photos = tmp_path / "D"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    (photos / "captions.csv").write_text("file,caption\n" + "".join(f"{i}.png,a photo number {i}\n" for i in range(4)))
    run = ["run", "--methods", f"diffusers:{pipeline}[prompt=a shirt,steps=2,name=sd],telea", "--datasets",
           f"folder:{photos}[size=40]", "--masks", "center", "--metrics", "fd-dinov2,clip-score,known-lpips,known-psnr",
           "--weights-dir", str(weights), "--out", str(tmp_path / "R")]
    assert main(run) == 0, capsys.readouterr().err
    df = benchkit.load_results(tmp_path / "R")
    assert set(df.method) == {"sd", "telea"} and df["clip-score"].notna().all() and df["known-lpips"].notna().all()
    cells = {c["method"]: c for c in (json.loads(p.read_text()) for p in (tmp_path / "R" / "cells").glob("*.json"))}
    assert cells["sd"]["settings"]["texts"] == ["a shirt"] * 4  # the method's prompt
    assert cells["telea"]["settings"]["texts"] == [f"a photo number {i}" for i in range(4)]  # the captions
    assert np.isfinite(cells["sd"]["set_scores"]["fd-dinov2"])
    scored = ["score", str(tmp_path / "R"), "--metrics", "fd-dinov2,clip-score", "--weights-dir", str(weights)]
    before = df.set_index(["method", "image_id"])["clip-score"].sort_index()
    import shutil

    shutil.copytree(tmp_path / "R", tmp_path / "S")
    for cell in (tmp_path / "S" / "cells").glob("*.json"):  # a finished run without the two metrics
        data = json.loads(cell.read_text())
        data["metrics"] = [m for m in data["metrics"] if m not in ("fd-dinov2", "clip-score")]
        data["rows"].pop("clip-score")
        data["set_scores"].pop("fd-dinov2")
        cell.write_text(json.dumps(data))
    scored[1] = str(tmp_path / "S")
    assert main(scored) == 0, capsys.readouterr().err
    after = benchkit.load_results(tmp_path / "S").set_index(["method", "image_id"])["clip-score"].sort_index()
    np.testing.assert_allclose(after.to_numpy(), before.to_numpy(), atol=0.05)  # from the kept 8-bit composites


def test_clip_score_without_a_prompt_or_caption_stops_before_anything_is_written(tmp_path, capsys):
    from benchkit.cli import main

    photos = tmp_path / "D"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(photos / f"{i}.png")
    tiny_clip_folder(tmp_path / "w")
    capsys.readouterr()
    code = main(["run", "--methods", "telea", "--datasets", f"folder:{photos}", "--masks", "center",
                 "--metrics", "clip-score", "--weights-dir", str(tmp_path / "w"), "--out", str(tmp_path / "R")])
    err = capsys.readouterr().err
    assert code == 2 and "needs a text per image" in err and err.count("\n") == 1, err
    assert not (tmp_path / "R").exists()


def test_score_refuses_a_text_metric_for_cells_run_without_texts(tmp_path, capsys):
    from benchkit.cli import main

    tiny_clip_folder(tmp_path / "w")
    assert main(["run", "--methods", "telea", "--masks", "center", "--n-images", "2", "--metrics", "psnr",
                 "--out", str(tmp_path / "R")]) == 0
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "R" / "cells").iterdir())
    capsys.readouterr()
    code = main(["score", str(tmp_path / "R"), "--metrics", "clip-score", "--weights-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and "was run without prompts or captions" in err and err.count("\n") == 1, err
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "R" / "cells").iterdir()) == before


def test_bad_captions_are_one_line_before_anything_is_written(tmp_path, capsys):
    from benchkit.cli import main

    photos = tmp_path / "D"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(photos / f"{i}.png")
    for text, message in (("name,text\n0.png,a\n", "its columns are name, text, not file and caption"),
                          ("file,caption\n0.png,a coat\n", "has no caption for 1.png (1 images lack one)")):
        (photos / "captions.csv").write_text(text)
        code = main(["run", "--methods", "telea", "--datasets", f"folder:{photos}", "--masks", "center",
                     "--out", str(tmp_path / "R")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "R").exists()


def test_a_broken_dinov2_file_is_one_line(tmp_path):
    from benchkit.errors import UserError

    torch.save({"cls_token": torch.zeros(1, 1, 8)}, tmp_path / "dinov2_vitl14_pretrain.pth")  # keys missing
    with pytest.raises(UserError, match="is not torch hub's DINOv2 checkpoint"):
        _setup("fd-dinov2", tmp_path)
    (tmp_path / "dinov2_vitl14_pretrain.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="is not torch hub's DINOv2 checkpoint"):
        _setup("fd-dinov2", tmp_path)
