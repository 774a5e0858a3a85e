import pytest
import torch

from benchkit.builtins.methods.gan import importance_weights, latent_search
from benchkit.builtins.metrics.pixel import psnr
from benchkit.builtins.nets.dcgan import Discriminator, Generator
from benchkit.errors import UserError
from benchkit.run.runner import run


@pytest.fixture(scope="module")
def tiny_gan():
    torch.manual_seed(0)
    gen, disc = Generator(32, 1, width=8), Discriminator(32, 1, width=8)
    # give BatchNorm non-trivial running statistics, as after training
    with torch.no_grad():
        gen.train(), disc.train()
        for _ in range(5):
            disc(gen(torch.rand(64, 100) * 2 - 1))
    for net in (gen, disc):
        net.eval().requires_grad_(False)
    return gen, disc


def test_importance_weights_by_hand():
    known = torch.ones(1, 1, 5, 5, dtype=torch.bool)
    known[0, 0, 2, 2] = False
    w = importance_weights(known, window=3)[0, 0]
    assert w[2, 2] == 0  # missing pixels get no weight
    assert w[1, 1] == pytest.approx(1 / 9) and w[2, 3] == pytest.approx(1 / 9)
    assert w[0, 0] == 0 and w[4, 4] == 0  # no missing pixel within their window
    known[0, 0, 2, 2], known[0, 0, 0, 1] = True, False
    w = importance_weights(known, window=3)[0, 0]
    # (0, 0) is a corner: its window holds 4 in-image pixels, one of them missing
    assert w[0, 0] == pytest.approx(1 / 4) and w[1, 1] == pytest.approx(1 / 9)
    complete = importance_weights(torch.ones(1, 1, 4, 4, dtype=torch.bool))
    assert torch.equal(complete, torch.ones(1, 1, 4, 4))  # no hole: plain L1 projection


def test_result_does_not_depend_on_the_rest_of_the_batch(tiny_gan):
    gen, disc = tiny_gan
    g = torch.Generator().manual_seed(1)
    images = torch.rand(4, 1, 32, 32, generator=g)
    known = torch.rand(4, 1, 32, 32, generator=g) > 0.6
    together, _ = latent_search(gen, disc, images, known, iterations=40)
    alone, _ = latent_search(gen, disc, images[2:3], known[2:3], iterations=40)
    reordered, _ = latent_search(gen, disc, images.flip(0), known.flip(0), iterations=40)
    torch.testing.assert_close(alone[0], together[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(reordered.flip(0), together, atol=1e-5, rtol=0)


def test_z_is_clipped_after_every_step(tiny_gan):
    seen = []
    latent_search(*tiny_gan, torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32) > 0.5, iterations=30, lr=0.5,
                  callback=lambda step, z: seen.append(z.abs().max().item()))
    assert len(seen) == 30 and max(seen) <= 1.0 and max(seen) == 1.0  # lr 0.5 pushes z to the bound


def test_projects_generated_images_back_to_35_db(tiny_gan):
    gen, disc = tiny_gan
    z_true = torch.rand(4, 100, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8
    with torch.no_grad():
        images = (gen(z_true) + 1) / 2  # generated images, in [0, 1]
    known = torch.ones(4, 1, 32, 32, dtype=torch.bool)  # no pixel missing
    fake, _ = latent_search(gen, disc, images, known, iterations=1500, lr=0.03, lam=0.003, restarts=2)
    assert psnr((fake + 1) / 2, images).min().item() >= 35


def test_missing_checkpoint_names_the_training_command(registry, config, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config.methods = ["gan"]
    with pytest.raises(UserError, match="train one with `benchkit train gan --dataset tiny`"):
        run(config, registry, show_progress=False)
    assert not config.out.exists()


def test_shipped_model_serves_the_embedded_default(tmp_path, monkeypatch):
    import json

    from benchkit.builtins import SHIPPED_MODELS
    from benchkit.plugin.registry import Registry
    from benchkit.run.runner import RunConfig

    info = json.loads((SHIPPED_MODELS[0] / "gan-fashion-mnist.json").read_text())
    for key in ("dataset", "size", "channels", "images_seen", "seed", "wall_seconds", "command"):
        assert key in info
    assert info["dataset"] == "fashion-mnist" and info["size"] == 32 and info["channels"] == 1
    monkeypatch.chdir(tmp_path)  # no ./models here: the shipped checkpoint must be found
    config = RunConfig(methods=["gan", "mean-fill"], masks=["center"], n_images=4, out=tmp_path / "run",
                       options={"gan": {"iterations": "5"}})
    outcome = run(config, Registry(block_external=True), show_progress=False)
    assert not outcome.failed and {r.method for r in outcome.ran} == {"gan[iterations=5]", "mean-fill"}
    assert outcome.ran[0].settings["checkpoint"].endswith("gan-fashion-mnist.safetensors")


def test_an_image_s_result_does_not_depend_on_its_shard_or_batch():
    """gan searches in groups of exactly ``group`` images (a partial group padded with copies), so
    the same image gives the same bits alone, in a shard of 5 and in a batch of 13."""
    from benchkit.builtins import SHIPPED_MODELS
    from benchkit.builtins.datasets.basic import FashionMNISTMini
    from benchkit.plugin.interfaces import MethodContext
    from benchkit.plugin.registry import Registry

    method = Registry(block_external=True).create("method", "gan[iterations=15,group=8]")
    method.setup(MethodContext("fashion-mnist-mini", torch.device("cpu"), (1, 32, 32),
                               checkpoint=SHIPPED_MODELS[0] / "gan-fashion-mnist.safetensors"))
    images = FashionMNISTMini().images("test", limit=13)
    known = torch.ones(13, 1, 32, 32, dtype=torch.bool)
    known[:, :, 8:24, 8:24] = False
    whole = method.inpaint(images * known, known)
    shards = torch.cat([method.inpaint(images[s:s + 5] * known[s:s + 5], known[s:s + 5]) for s in range(0, 13, 5)])
    alone = method.inpaint(images[7:8] * known[7:8], known[7:8])
    assert torch.equal(whole, shards) and torch.equal(whole[7:8], alone)
