import torch

from benchkit.builtins.methods.lowrank import LowRank, svt, tnnr_complete


def svt_complete(m: torch.Tensor, known: torch.Tensor, iterations: int = 500) -> torch.Tensor:
    """Plain singular value thresholding (Cai, Candes & Shen 2010, Algorithm 1), the nuclear-norm
    baseline TNNR is compared with: tau = 5 sqrt(rows cols), step 1.2 / (fraction observed)."""
    m = m.double()
    rows, cols = m.shape[-2:]
    tau, step = 5.0 * (rows * cols) ** 0.5, 1.2 / known.double().mean().item()
    y = torch.zeros_like(m)
    x = y
    for _ in range(iterations):
        x = svt(y, tau)
        y = y + step * torch.where(known, m - x, torch.zeros_like(m))
    return x


def _low_rank(n=4, size=40, rank=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, size, rank, generator=g, dtype=torch.float64) @ torch.randn(n, rank, size, generator=g,
                                                                                 dtype=torch.float64)
    known = torch.rand(n, size, size, generator=g) < 0.5
    return (m - m.min()) / (m.max() - m.min()), known


def test_tnnr_recovers_a_low_rank_matrix_better_than_svt():
    m, known = _low_rank()
    error = lambda x: ((x - m).norm() / m.norm()).item()  # noqa: E731
    tnnr = tnnr_complete(m, known, rank=3, beta=1.0, outer=10, inner=200, tol=1e-8)
    svt = svt_complete(m, known, iterations=500)
    assert error(tnnr) < 1e-4
    assert error(tnnr) < error(svt) / 10


def test_lowrank_method_keeps_known_pixels_and_range():
    m, known = _low_rank(n=2, size=16)
    images = m.float().unsqueeze(1)
    mask = known.unsqueeze(1)
    out = LowRank().inpaint(images * mask, mask)
    assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out[mask], images[mask], atol=1e-6, rtol=0)


def test_svt_recovers_from_a_failed_eigendecomposition(monkeypatch):
    import torch

    from benchkit.builtins.methods import lowrank

    x = torch.randn(3, 8, 6, generator=torch.Generator().manual_seed(0))
    reference = lowrank.svt(x, 0.5)
    u, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
    torch.testing.assert_close(reference.double(), (u * (s - 0.5).clamp(min=0).unsqueeze(-2)) @ vh, atol=1e-4, rtol=0)
    real_eigh = torch.linalg.eigh

    def flaky_eigh(gram):  # LAPACK's failure on the second matrix: NaN eigenvectors
        evals, v = real_eigh(gram)
        v = v.clone()
        v[1] = float("nan")
        return evals, v

    monkeypatch.setattr(torch.linalg, "eigh", flaky_eigh)
    torch.testing.assert_close(lowrank.svt(x, 0.5), reference, atol=1e-4, rtol=0)
