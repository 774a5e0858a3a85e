import dataclasses
import json

import torch

from benchkit.builtins.nets.dcgan import Discriminator, Generator, train_gan
from benchkit.builtins.training.loop import TrainConfig
from benchkit.checkpoints import load_model


def test_tiny_gan_trains_saves_and_resumes(tmp_path):
    images = torch.rand(64, 1, 32, 32)
    config = TrainConfig(dataset="toy", epochs=1, batch_size=16, checkpoint_minutes=0)
    path = train_gan(images, config, tmp_path / "models", "test", width=8)
    tensors, info = load_model(path)
    assert info["images_seen"] == 64 and info["epoch"] == 1 and info["size"] == 32 and info["command"] == "test"
    gen = Generator(32, 1, width=8)
    gen.load_state_dict({k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")})
    disc = Discriminator(32, 1, width=8)
    disc.load_state_dict({k[len("discriminator."):]: v for k, v in tensors.items() if k.startswith("discriminator.")})
    assert (tmp_path / "models" / "gan-toy-samples" / "epoch-001.png").is_file()
    config.epochs = 2
    train_gan(images, config, tmp_path / "models", "test", width=8)
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["images_seen"] == 128 and info["epoch"] == 2
    # the trainer's own options are recorded beside the shared settings (no DCGAN fields in TrainConfig)
    assert (info["width"], info["nz"], info["lr"], info["beta1"]) == (8, 100, 2e-4, 0.5)
    assert not {"width", "nz", "lr", "beta1"} & set(dataclasses.asdict(config))


def test_dcgan_shapes_and_init():
    for size in (32, 64, 128):
        gen, disc = Generator(size, 3, width=8), Discriminator(size, 3, width=8)
        z = torch.rand(2, 100) * 2 - 1
        x = gen(z)
        assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
        assert disc(x).shape == (2,)
    weights = torch.cat([m.weight.flatten() for m in Generator(64, 3).modules()
                         if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001


def test_uint8_images_train_exactly_like_their_float_copy(tmp_path):
    from benchkit.builtins.training.loop import channel_means

    raw = torch.randint(0, 256, (32, 1, 32, 32), dtype=torch.uint8)
    as_float = raw.float() / 255
    torch.testing.assert_close(channel_means(raw, chunk=5), as_float.mean(dim=(0, 2, 3)))
    paths = []
    for name, images in (("u8", raw), ("f32", as_float)):
        config = TrainConfig(dataset="toy", epochs=1, batch_size=16)
        paths.append(train_gan(images, config, tmp_path / name, "test", width=8))
    (a, _), (b, _) = load_model(paths[0]), load_model(paths[1])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_slim_model_keeps_named_networks_in_float16(tmp_path):
    from benchkit.checkpoints import save_model, slim_model

    weights = {"encoder.w": torch.randn(4, 3), "encoder.steps": torch.tensor([7]), "discriminator.w": torch.randn(2)}
    save_model(tmp_path / "full.safetensors", weights, {"dataset": "toy"})
    slim_model(tmp_path / "full.safetensors", tmp_path / "slim.safetensors", keep=("encoder.",))
    tensors, info = load_model(tmp_path / "slim.safetensors")
    assert set(tensors) == {"encoder.w", "encoder.steps"}  # the discriminator is gone
    assert tensors["encoder.w"].dtype == torch.float32  # loaded back as float32 ...
    assert torch.equal(tensors["encoder.w"], weights["encoder.w"].half().float())  # ... from float16 storage
    assert torch.equal(tensors["encoder.steps"], weights["encoder.steps"])
    assert info["dataset"] == "toy" and info["stored_dtype"] == "float16" and info["networks"] == ["encoder"]
    assert (tmp_path / "slim.safetensors").stat().st_size < (tmp_path / "full.safetensors").stat().st_size


def test_random_flips_turn_exactly_the_images_whose_coin_fell_under_one_half():
    from benchkit.builtins.training.loop import random_hflip

    x = torch.arange(5 * 2 * 3 * 4, dtype=torch.float32).view(5, 2, 3, 4)
    coins = torch.rand(5, generator=torch.Generator().manual_seed(1)) < 0.5
    flipped = random_hflip(x, torch.Generator().manual_seed(1))
    for i in range(5):  # by hand: image i is mirrored left-right iff its coin is under 1/2
        expected = x[i].flip(-1) if coins[i] else x[i]
        assert torch.equal(flipped[i], expected)
    assert 0 < int(coins.sum()) < 5  # this seed flips some, not all


class CountingLoss:
    """A loss whose value is read only through float(): counts how often the loop reads it."""

    reads = 0

    def __float__(self):
        CountingLoss.reads += 1
        return 0.5


def test_losses_are_read_every_log_every_batches_not_every_step(tmp_path):
    from benchkit.builtins.training.loop import LOG_EVERY, TrainingLoop

    net = torch.nn.Linear(1, 1)
    images = torch.zeros(60, 1, 4, 4)
    loop = TrainingLoop("probe", images, TrainConfig(dataset="d", epochs=1, batch_size=1), tmp_path, "test",
                        {"net": net}, {"sgd": torch.optim.SGD(net.parameters(), lr=0.1)}, {})
    CountingLoss.reads = 0
    loop.fit(lambda real, index: {"loss": CountingLoss()}, lambda: torch.zeros(1, 4, 4))
    assert LOG_EVERY == 25 and CountingLoss.reads == 3  # after batches 25, 50 and the epoch's last, 60
