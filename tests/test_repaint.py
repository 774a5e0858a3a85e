"""RePaint over a small random DDPM: the sampling loop against diffusers' own DDPM sampling."""
import pytest
import torch

pytest.importorskip("diffusers")

from benchkit.builtins.methods.repaint import jump_schedule, repaint  # noqa: E402
from benchkit.builtins.training.ddpm import make_scheduler, make_unet  # noqa: E402


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return make_unet(16, 1, 8).eval().requires_grad_(False)


def streams(n, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_jump_schedule_is_repaints():
    """get_schedule_jump(t_T=20, jump_length=5, jump_n_sample=3) of andreas128/RePaint, written out:
    down to 10, up to 15 and down again twice, the same at 5 and at 0, then to -1."""
    down = lambda a, b: list(range(a, b - 1, -1))  # noqa: E731
    up = lambda a, b: list(range(a, b + 1))  # noqa: E731
    expected = (down(19, 10) + (up(11, 15) + down(14, 10)) * 2 + down(9, 5) + (up(6, 10) + down(9, 5)) * 2
                + down(4, 0) + (up(1, 5) + down(4, 0)) * 2 + [-1])
    assert jump_schedule(20, 5, 3) == expected
    assert jump_schedule(7, 3, 1) == [6, 5, 4, 3, 2, 1, 0, -1]


@torch.no_grad()
def test_without_resampling_or_known_pixels_it_is_plain_ddpm_sampling(unet):
    """diffusers' DDPMScheduler loop with the same per-image noise: the same images."""
    n, steps = 3, 12
    scheduler = make_scheduler()
    scheduler.set_timesteps(steps)
    generators = streams(n)
    x = torch.cat([torch.randn(1, 1, 16, 16, generator=g) for g in generators])
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x, generator=generators).prev_sample
    nothing_known = torch.zeros(n, 1, 16, 16, dtype=torch.bool)
    got = repaint(unet, torch.zeros(n, 1, 16, 16), nothing_known, streams(n), steps, 5, 1, spacing="diffusers")
    torch.testing.assert_close(got, x, rtol=0, atol=1e-6)


def space_timesteps(num_timesteps, count):
    """RePaint's guided_diffusion/respace.py, one section, as the paper's configs call it: a float
    index from 0, advanced by (T - 1) / (count - 1) per step, rounded with Python's round."""
    stride, index, kept = (num_timesteps - 1) / (count - 1), 0.0, set()
    for _ in range(count):
        kept.add(round(index))
        index += stride
    return kept


def test_respacing_is_repaint_s_by_default_and_diffusers_on_request():
    from diffusers import RePaintScheduler

    from benchkit.builtins.methods.repaint import respaced_timesteps

    for steps in (2, 12, 50, 250, 1000):
        assert respaced_timesteps(steps) == sorted(space_timesteps(1000, steps))
        reference = RePaintScheduler(num_train_timesteps=1000)
        reference.set_timesteps(steps, jump_length=1, jump_n_sample=1)
        assert respaced_timesteps(steps, "diffusers") == sorted(set(reference.timesteps.tolist()))
    assert max(respaced_timesteps(250)) == 999 and max(respaced_timesteps(250, "diffusers")) == 996


@torch.no_grad()
def test_the_chain_runs_on_repaint_s_timesteps(unet):
    """With nothing known and no resampling: diffusers' DDPM loop over RePaint's kept timesteps."""
    n, steps = 2, 12
    scheduler = make_scheduler()
    scheduler.set_timesteps(timesteps=sorted(space_timesteps(1000, steps), reverse=True))
    assert scheduler.timesteps[0] == 999
    generators = streams(n)
    x = torch.cat([torch.randn(1, 1, 16, 16, generator=g) for g in generators])
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x, generator=generators).prev_sample
    nothing_known = torch.zeros(n, 1, 16, 16, dtype=torch.bool)
    got = repaint(unet, torch.zeros(n, 1, 16, 16), nothing_known, streams(n), steps, 5, 1)
    torch.testing.assert_close(got, x, rtol=0, atol=1e-6)


@torch.no_grad()
def test_known_pixels_come_back_unchanged_and_each_image_has_its_own_noise(unet):
    torch.manual_seed(1)
    x0 = torch.rand(4, 1, 16, 16) * 2 - 1
    known = torch.rand(4, 1, 16, 16) > 0.4
    out = repaint(unet, x0, known, streams(4), 10, 3, 2)
    assert torch.equal(out[known], x0[known])
    assert out.abs().max() <= 1.0 + 1e-6
    alone = repaint(unet, x0[2:3], known[2:3], streams(1, seed=2), 10, 3, 2)  # image 2 with its own stream
    torch.testing.assert_close(alone, out[2:3], rtol=0, atol=1e-5)


def test_the_ddpm_trainer_saves_resumes_and_loads(tmp_path):
    import json

    from benchkit.builtins.training.ddpm import DDPMTrainer, load_ddpm
    from benchkit.plugin.interfaces import TrainConfig

    torch.manual_seed(0)
    images = torch.rand(32, 1, 32, 32)
    config = TrainConfig(dataset="toy", epochs=1, batch_size=16, checkpoint_minutes=0)
    trainer = DDPMTrainer(width=8)
    path = trainer.train(images, config, tmp_path / "models", "test", {})
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["images_seen"] == 32 and info["epoch"] == 1 and info["weights"] == "ema"
    assert (tmp_path / "models" / "ddpm-toy-samples" / "epoch-001.png").is_file()
    config.epochs = 2  # the same command with more epochs goes on from the saved state
    trainer.train(images, config, tmp_path / "models", "test", {})
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["images_seen"] == 64 and info["epoch"] == 2
    unet, _ = load_ddpm(path, torch.device("cpu"))
    assert unet(torch.zeros(1, 1, 32, 32), torch.tensor(5)).sample.shape == (1, 1, 32, 32)
