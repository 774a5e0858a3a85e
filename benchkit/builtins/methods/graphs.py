"""Repeating one optimisation step: eagerly, or on CUDA replayed as one captured CUDA graph.

An iterative method (``gan``'s latent search) whose step works on tensors of fixed shape and
address (the parameters, the optimiser's state with ``capturable=True``, the targets) can have its
whole step (forward, backward, optimiser update, clamp) captured once and replayed: one launch
instead of hundreds of small kernels. The first ``warmup`` steps run eagerly on a side stream, as
PyTorch's capture recipe asks (they are real steps of the search, counted in ``iterations``);
capture then records the step without running it, and each replay runs it. Anywhere else, or when
capture fails, every step runs eagerly, with a warning saying why.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

WARMUP = 3  # eager steps before capture (PyTorch's recipe: kernels and allocator settle)


def repeat_step(step: Callable[[], None], zero_grad: Callable[[], None], iterations: int, device: torch.device,
                callback: Callable[[int], None] | None = None, graph: bool = True) -> str:
    """Run ``zero_grad(); step()`` ``iterations`` times; ``callback(i)`` after step ``i`` (1-based).

    ``step`` must use only tensors whose shapes and storage stay fixed across steps and must not
    read values back to the CPU. Returns "graph" when the steps after the warm-up were replayed
    from a CUDA graph, else "eager".
    """
    def eager(first: int, last: int) -> None:  # steps first+1 .. last, each launched from Python
        for i in range(first, last):
            zero_grad()
            step()
            if callback is not None:
                callback(i + 1)

    if not (graph and device.type == "cuda" and iterations > WARMUP):
        eager(0, iterations)
        return "eager"
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        eager(0, WARMUP)
    torch.cuda.current_stream(device).wait_stream(side)
    captured = torch.cuda.CUDAGraph()
    zero_grad()  # gradients are then allocated inside the graph's memory pool and rewritten by each replay
    try:
        with torch.cuda.graph(captured):
            step()
    except RuntimeError as exc:
        warnings.warn(f"CUDA graph capture failed ({exc}); the remaining steps run eagerly")
        eager(WARMUP, iterations)
        return "eager"
    for i in range(WARMUP, iterations):
        captured.replay()
        if callback is not None:
            callback(i + 1)
    return "graph"
