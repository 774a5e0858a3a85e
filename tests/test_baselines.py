import torch

from benchkit.builtins.methods.baselines import MeanFill


def test_mean_fill_by_hand():
    images = torch.tensor([[[[0.2, 0.4], [0.0, 0.9]], [[1.0, 0.0], [0.0, 0.5]]]])  # 1 x 2 x 2 x 2
    known = torch.tensor([[[[True, True], [False, True]]]])
    out = MeanFill().inpaint(images * known, known)
    # channel 0: mean of 0.2, 0.4, 0.9 = 0.5; channel 1: mean of 1.0, 0.0, 0.5 = 0.5
    expected = torch.tensor([[[[0.2, 0.4], [0.5, 0.9]], [[1.0, 0.0], [0.5, 0.5]]]])
    torch.testing.assert_close(out, expected)
