"""Repeating an optimisation step eagerly or as a replayed CUDA graph (issue 24)."""
import pytest
import torch

from benchkit.builtins.methods.gan import latent_search
from benchkit.builtins.methods.graphs import WARMUP, repeat_step
from benchkit.builtins.nets.dcgan import Discriminator, Generator


def quadratic(device):
    """Adam on sum((x - 3)^2): the step and its zero_grad, and the tensor it moves."""
    x = torch.zeros(5, device=device, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.1, capturable=device.type == "cuda")

    def step():
        (x - 3).pow(2).sum().backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-10, 10)

    return x, step, lambda: opt.zero_grad(set_to_none=True)


def test_on_a_cpu_the_steps_run_eagerly_and_count_exactly():
    x, step, zero = quadratic(torch.device("cpu"))
    seen = []
    assert repeat_step(step, zero, 40, torch.device("cpu"), callback=seen.append) == "eager"
    assert seen == list(range(1, 41))
    y = torch.zeros(5, requires_grad=True)  # the same 40 Adam steps written out
    opt = torch.optim.Adam([y], lr=0.1)
    for _ in range(40):
        opt.zero_grad()
        (y - 3).pow(2).sum().backward()
        opt.step()
    assert torch.equal(x, y)


def tiny_gan(device):
    torch.manual_seed(0)
    return Generator(32, 1, width=8).to(device).eval(), Discriminator(32, 1, width=8).to(device).eval()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_graph_search_equals_the_eager_one_on_cuda():
    device = torch.device("cuda")
    gen, disc = tiny_gan(device)
    images = torch.rand(8, 1, 32, 32, device=device)
    known = torch.rand(8, 1, 32, 32, device=device) > 0.5
    codes = {}
    for graph in (False, True):
        latent_search(gen, disc, images, known, iterations=50, callback=lambda i, z: codes.__setitem__(graph, z),
                      graph=graph)
    assert 50 > WARMUP
    torch.testing.assert_close(codes[True], codes[False], rtol=0, atol=1e-5)
    x, step, zero = quadratic(device)
    assert repeat_step(step, zero, 20, device) == "graph"
    torch.testing.assert_close(x.cpu(), torch.full((5,), 3.0), atol=0.5, rtol=0)


def test_the_cpu_search_is_unchanged_by_the_graph_option():
    gen, disc = tiny_gan(torch.device("cpu"))
    images, known = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32) > 0.5
    a, _ = latent_search(gen, disc, images, known, iterations=10, graph=True)
    b, _ = latent_search(gen, disc, images, known, iterations=10, graph=False)
    assert torch.equal(a, b)
