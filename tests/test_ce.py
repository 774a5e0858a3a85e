import torch

from benchkit.builtins.masks.basic import CenterMask, RandomMask
from benchkit.builtins.nets.context_encoder import ContextEncoder, default_bottleneck, hole_weights, prefill, train_ce
from benchkit.builtins.training.loop import TrainConfig
from benchkit.masking import make_masks


def test_prefill_never_carries_hole_pixels():
    images = torch.rand(4, 3, 8, 8) + 2.0  # values no fill can produce
    known = torch.rand(4, 1, 8, 8) > 0.5
    fill = torch.tensor([0.1, 0.2, 0.3])
    out = prefill(images, known, fill)
    hole = ~known.expand_as(images)
    assert (out[hole] < 1).all() and torch.equal(out[~hole], images[~hole])
    assert torch.equal(out[:, 1][~known[:, 0]], torch.full_like(out[:, 1][~known[:, 0]], 0.2))


def test_network_shapes_and_bottleneck_scaling():
    assert [default_bottleneck(s) for s in (32, 64, 128)] == [1000, 2000, 4000]
    for size in (32, 64):
        net = ContextEncoder(size, 3, width=8, bottleneck=16)
        out = net(torch.rand(2, 3, size, size) * 2 - 1)
        assert out.shape == (2, 3, size, size) and out.abs().max() <= 1


def test_overlap_band_weights():
    known = torch.ones(1, 1, 7, 7, dtype=torch.bool)
    known[0, 0, 3, 3] = False
    w = hole_weights(known, overlap=1)[0, 0]
    assert w[3, 3] == 1 and w[2, 2] == 10 and w[3, 4] == 10 and w[0, 0] == 0
    assert torch.equal(hole_weights(known), (~known).float())


def test_tiny_context_encoder_loss_falls(tmp_path):
    g = torch.Generator().manual_seed(0)
    # a learnable world: smooth images whose hole content follows from the context
    coarse = torch.rand(256, 1, 4, 4, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    masks = {"center": CenterMask(), "random": RandomMask()}
    config = TrainConfig(dataset="toy", epochs=12, batch_size=32)
    path = train_ce(images, masks, config, tmp_path, "test", bottleneck=32, width=8, lr=2e-3)
    from benchkit.checkpoints import load_model

    tensors, info = load_model(path)
    net = ContextEncoder(32, 1, 8, 32)
    net.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
    net.eval()
    known = make_masks(CenterMask(), "eval", "center", list(range(64)), 32, 32, 0)
    test = images[:64]
    with torch.no_grad():
        trained = (net(prefill(test, known, torch.tensor(info["fill"])) * 2 - 1) + 1) / 2
        untrained_net = ContextEncoder(32, 1, 8, 32).eval()
        untrained = (untrained_net(prefill(test, known, torch.tensor(info["fill"])) * 2 - 1) + 1) / 2
    hole = ~known.expand_as(test)
    error = lambda x: (x[hole] - test[hole]).pow(2).mean().item()  # noqa: E731
    assert error(trained) < 0.5 * error(untrained)
    assert info["masks"] == ["center", "random"] and len(info["fill"]) == 1


def test_shipped_ce_serves_the_embedded_default_and_beats_mean_fill(tmp_path, monkeypatch):
    import json

    from benchkit.builtins import SHIPPED_MODELS
    from benchkit.plugin.registry import Registry
    from benchkit.run.runner import RunConfig, run
    from benchkit.store.results import load_results

    info = json.loads((SHIPPED_MODELS[0] / "ce-fashion-mnist.json").read_text())
    assert info["dataset"] == "fashion-mnist" and (info["size"], info["channels"]) == (32, 1)
    assert info["masks"] == ["center", "pattern", "random", "half"] and info["train_images"] == 60000
    monkeypatch.chdir(tmp_path)  # no ./models here: the shipped checkpoint must be found
    config = RunConfig(methods=["ce", "mean-fill"], masks=["center"], n_images=32, out=tmp_path / "run")
    outcome = run(config, Registry(block_external=True), show_progress=False)
    assert not outcome.failed
    means = load_results(tmp_path / "run").groupby("method").psnr.mean()
    assert means["ce"] > means["mean-fill"] + 3  # a trained CE, not noise: 23 dB against 13 dB
