import torch

from benchkit.builtins.methods.nn import NearestNeighbour, nearest_known
from benchkit.plugin.interfaces import MethodContext


def test_nearest_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(300, 3, 8, 8, generator=g)
    queries = torch.rand(20, 3, 8, 8, generator=g)
    known = torch.rand(20, 1, 8, 8, generator=g) < 0.4
    found = nearest_known(queries * known, known, train, chunk=64)  # several chunks
    for i in range(20):
        k = known[i].expand(3, 8, 8)
        dists = [((queries[i][k].double() - t[k].double()) ** 2).sum().item() for t in train]
        assert found[i].item() == min(range(300), key=dists.__getitem__)


def test_nn_fills_hole_from_the_training_image():
    train = torch.stack([torch.full((1, 4, 4), v) for v in (0.1, 0.5, 0.9)])
    train[2, 0, 0, 0] = 0.2  # the image nearest to the query below on the known pixels
    query = torch.full((1, 1, 4, 4), 0.85)
    known = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    known[0, 0, 2:, 2:] = False
    method = NearestNeighbour()
    method.setup(MethodContext("d", torch.device("cpu"), (1, 4, 4), train_images=train))
    out = method.inpaint(query * known, known)
    assert torch.equal(out[0, 0, 2:, 2:], torch.full((2, 2), 0.9))
    assert torch.equal(out[known.expand_as(out)], query[known.expand_as(query)])
    blended = NearestNeighbour(blend=True)
    blended.setup(MethodContext("d", torch.device("cpu"), (1, 4, 4), train_images=train))
    # the retrieved hole is flat, so blending shifts it to the known level
    torch.testing.assert_close(blended.inpaint(query * known, known), query)
