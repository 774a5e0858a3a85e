"""``repaint``: RePaint (Lugmayr et al., CVPR 2022) on benchkit's DDPM (:mod:`benchkit.builtins.training.ddpm`).

The sampling loop is the paper's Algorithm 1, written here over diffusers' UNet and its DDPM
scheduler step (the library's ``RePaintScheduler`` sits among its deprecated pipelines). Images are
in [-1, 1]; ``m`` is the known mask. Going down from ``t`` to ``t - 1`` on the respaced chain:

* the known part is the ground truth noised to ``t - 1``: ``sqrt(abar) x_0 + sqrt(1 - abar) eps``
  (at the last step, ``x_0`` itself);
* the unknown part is one reverse step of the DDPM (``DDPMScheduler.step``) from ``x_t``;
* ``x_{t-1} = m * known + (1 - m) * unknown``.

The respaced chain keeps the timesteps RePaint keeps (``guided_diffusion/respace.py``,
``space_timesteps``: a fractional stride from 0 to the last timestep, 0 ... 999 for 250 of 1000),
which the paper's numbers used; ``spacing=diffusers`` keeps diffusers' ``RePaintScheduler``
mapping instead (``i * (1000 // steps)``: 0 ... 996). Either way the step between two kept
timesteps uses the betas of the respaced chain, ``1 - abar_t / abar_prev``.

Resampling follows the jump schedule of andreas128/RePaint (``guided_diffusion/scheduler.py``,
``get_schedule_jump``): every ``jump_length`` steps on the way down, the chain is sent back up
``jump_length`` steps with the forward process, ``x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z``
(one step at a time, with the respaced betas), and denoised again, ``resamplings - 1`` times. The
paper's setting is 250 steps, jump length 10 and 10 resamplings; ``resamplings=1`` is plain
sampling with the known region pasted in at every step.

Each image has its own random stream, seeded from the run's seed and the image's position, so an
image's fill does not depend on its batch.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch

from benchkit.builtins import SHIPPED_MODELS
from benchkit.builtins.training.ddpm import TRAIN_STEPS, load_ddpm, make_scheduler
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method, MethodContext
from benchkit.plugin.options import Range


def jump_schedule(steps: int, jump_length: int, resamplings: int) -> list[int]:
    """The indices (into the respaced timesteps, ``steps - 1`` the noisiest) that RePaint visits, as
    ``get_schedule_jump`` lists them, ending at -1 (the clean image): down one at a time; each time
    it reaches a multiple ``j`` of ``jump_length`` below ``steps - jump_length``, back up
    ``jump_length`` steps, ``resamplings - 1`` times in all for that ``j``."""
    jumps = {j: resamplings - 1 for j in range(0, steps - jump_length, jump_length)}
    t, visited = steps, []
    while t >= 1:
        t -= 1
        visited.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                visited.append(t)
    return visited + [-1]


def respaced_timesteps(steps: int, spacing: str = "repaint", train_steps: int = TRAIN_STEPS) -> list[int]:
    """The model's timesteps (of ``train_steps``) that a ``steps``-long chain visits, ascending.

    ``repaint``: RePaint's ``space_timesteps`` with one section: an index that starts at 0 and grows
    by ``(train_steps - 1) / (steps - 1)`` per step, each value rounded as Python rounds (half to even).
    ``diffusers``: ``RePaintScheduler.set_timesteps``'s ``i * (train_steps // steps)``.
    """
    if spacing == "diffusers":
        return [i * (train_steps // steps) for i in range(steps)]
    stride = (train_steps - 1) / (steps - 1) if steps > 1 else 1.0
    kept, index = [], 0.0
    for _ in range(steps):
        kept.append(round(index))
        index += stride
    return sorted(set(kept))


class RePaint(Method):
    """RePaint with the shipped DDPM (trained with ``benchkit train ddpm``).

    Parameters
    ----------
    steps : int
        Timesteps of the respaced reverse chain (the DDPM is trained with 1000).
    jump_length : int
        Steps the chain goes back up at each resampling.
    resamplings : int
        Times each stretch of ``jump_length`` steps is denoised (1: no resampling).
    seed : int or None
        Seed of the sampling noise (each image's stream is derived from it and the image's
        position); None: the run's ``--seed``.
    spacing : str
        Which timesteps the respaced chain keeps: ``repaint`` (RePaint's ``space_timesteps``, the
        paper's) or ``diffusers`` (``RePaintScheduler``'s); see :func:`respaced_timesteps`.
    """

    name = "repaint"
    seconds_per_image = 0.25  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "RePaint (Lugmayr et al. 2022): DDPM sampling with the known region noised in, resampling jumps"
    needs_checkpoint = "ddpm"
    checkpoint_dirs = SHIPPED_MODELS
    needs_cell = True
    requires = ("diffusers",)
    install_hint = "pip install 'benchkit[diffusion]'"
    slow = True

    def __init__(self, steps: Annotated[int, Range(2, 1000)] = 50, jump_length: Annotated[int, Range(1)] = 5,
                 resamplings: Annotated[int, Range(1)] = 3, seed: Annotated[int, Range(0)] | None = None,
                 spacing: Literal["repaint", "diffusers"] = "repaint") -> None:
        self.steps, self.jump_length, self.resamplings, self.noise_seed = steps, jump_length, resamplings, seed
        self.spacing = spacing

    def setup(self, context: MethodContext) -> None:
        self.unet, _ = load_ddpm(context.checkpoint, context.device)
        self.device = context.device
        self.seed = context.seed if self.noise_seed is None else self.noise_seed

    @torch.no_grad()
    def inpaint(self, images, known, mask: str = "", image_ids=()):
        seeds = self.image_seeds(self.seed, image_ids or range(len(images)))
        streams = [torch.Generator().manual_seed(s) for s in seeds]
        return repaint(self.unet, images * 2 - 1, known, streams, self.steps, self.jump_length,
                       self.resamplings, self.spacing).add(1).div(2)


def repaint(unet, x0: torch.Tensor, known: torch.Tensor, streams: list[torch.Generator], steps: int,
            jump_length: int, resamplings: int, spacing: str = "repaint") -> torch.Tensor:
    """RePaint of ``x0`` (``N x C x H x W`` in [-1, 1], read only where ``known``); ``streams`` one
    generator per image. Returns the fills in [-1, 1] with the known pixels equal to ``x0``'s."""
    scheduler = make_scheduler()
    scheduler.set_timesteps(timesteps=respaced_timesteps(steps, spacing)[::-1])  # the scheduler's order: descending
    steps = len(scheduler.timesteps)
    timesteps = scheduler.timesteps.flip(0)  # ascending: index i -> the model's timestep
    abar = scheduler.alphas_cumprod
    device, m = x0.device, known.to(x0.dtype)
    has_known = known.flatten(1).any(1).tolist()

    def noise(only: list[bool] | None = None) -> torch.Tensor:  # each image from its own stream
        return torch.cat([torch.randn(1, *x0.shape[1:], generator=g) if only is None or only[i]
                          else torch.zeros(1, *x0.shape[1:]) for i, g in enumerate(streams)]).to(device)

    def abar_at(i: int) -> torch.Tensor:
        return abar[timesteps[i]] if i >= 0 else torch.tensor(1.0)

    schedule = jump_schedule(steps, jump_length, resamplings)
    x = noise()
    for current, following in zip(schedule[:-1], schedule[1:]):
        if following < current:  # down: one reverse step; the known region noised to the same level
            t = timesteps[current]
            eps = unet(x, t.to(device)).sample
            unknown = scheduler.step(eps, t, x, generator=streams).prev_sample
            level = abar_at(following).to(device)
            seen = x0 if following < 0 else level.sqrt() * x0 + (1 - level).sqrt() * noise(has_known)
            x = m * seen + (1 - m) * unknown
        else:  # up: the forward process over one respaced step
            beta = (1 - abar_at(following) / abar_at(current)).to(device)
            x = (1 - beta).sqrt() * x + beta.sqrt() * noise()
    return x


@hookimpl
def register_methods(register):
    register(RePaint)
