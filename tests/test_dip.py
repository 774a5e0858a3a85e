"""Deep Image Prior: the batched fit against one network at a time."""
import torch

from benchkit.builtins.methods.dip import INPUT_CHANNELS, Hourglass, fit, levels_for


def one_at_a_time(image, known, seed, iterations, lr, reg_noise_std, width):
    """The DIP loop of the paper's notebook for one image, with the same seeding as benchkit's."""
    stream = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=stream)))
        net = Hourglass(image.shape[0], levels_for(image.shape[-1]), width)
    z = torch.rand(1, INPUT_CHANNELS, *image.shape[1:], generator=stream).mul_(0.1)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(iterations):
        noisy = z + torch.randn(z.shape, generator=stream) * reg_noise_std
        loss = ((net(noisy) - image) * known).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return net(z)[0]


def test_the_batched_fit_equals_one_network_per_image():
    torch.manual_seed(0)
    images = torch.rand(3, 1, 16, 16)
    known = torch.rand(3, 1, 16, 16) > 0.5
    seeds = [11, 12, 13]
    batched = fit(images, known, seeds, iterations=15, lr=0.01, reg_noise_std=0.03, width=8)
    for i in range(3):
        alone = one_at_a_time(images[i], known[i].float(), seeds[i], 15, 0.01, 0.03, 8)
        torch.testing.assert_close(batched[i], alone, rtol=0, atol=1e-4)


def test_it_fits_the_known_pixels_and_sizes_the_network_for_the_image():
    torch.manual_seed(1)
    images = torch.rand(2, 3, 32, 32)
    known = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    before = fit(images, known, [1, 2], iterations=1, lr=0.01, reg_noise_std=0.0, width=16)
    after = fit(images, known, [1, 2], iterations=150, lr=0.01, reg_noise_std=0.0, width=16)
    assert (after - images).pow(2).mean() < 0.5 * (before - images).pow(2).mean()
    assert [levels_for(s) for s in (16, 32, 64, 128, 512)] == [2, 3, 4, 5, 5]
