"""Published model files in their published formats, with random weights, made by the tests.

A LaMa folder as advimman/lama publishes ``big-lama/``: ``config.yaml`` written by OmegaConf (with
its ``${...}`` interpolations, as the released configs have them) and ``models/best.ckpt``, a
Lightning-style checkpoint whose callback state is keyed by the callback class and whose
hyper-parameters hold an OmegaConf ``DictConfig``, both pickled under their real class names.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

from benchkit.builtins.nets.ffc import FFCResNetGenerator

LAMA_GENERATOR = """
kind: ffc_resnet
input_nc: 4
output_nc: 3
ngf: {ngf}
n_downsampling: 3
n_blocks: {blocks}
add_out_act: sigmoid
init_conv_kwargs:
  ratio_gin: 0
  ratio_gout: 0
  enable_lfu: false
downsample_conv_kwargs:
  ratio_gin: ${{generator.init_conv_kwargs.ratio_gout}}
  ratio_gout: ${{generator.downsample_conv_kwargs.ratio_gin}}
  enable_lfu: false
resnet_conv_kwargs:
  ratio_gin: 0.75
  ratio_gout: ${{generator.resnet_conv_kwargs.ratio_gin}}
  enable_lfu: {lfu}
"""


def lightning_callback_class():
    """A class pickled as ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``, made
    importable under that name for the pickler (the test does not need Lightning itself)."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    for name in names:
        sys.modules.setdefault(name, types.ModuleType(name))
    module = sys.modules[names[-1]]
    if not hasattr(module, "ModelCheckpoint"):
        module.ModelCheckpoint = type("ModelCheckpoint", (), {"__module__": names[-1]})
    return module.ModelCheckpoint


def lama_generator_config(ngf: int = 8, blocks: int = 2, lfu: bool = False) -> str:
    return LAMA_GENERATOR.format(ngf=ngf, blocks=blocks, lfu=str(lfu).lower())


def make_lama_folder(root: Path, ngf: int = 8, blocks: int = 2, lfu: bool = False, seed: int = 0,
                     extra_checkpoint: dict | None = None) -> tuple[Path, FFCResNetGenerator]:
    """A ``big-lama``-style folder with a random generator; returns the folder and the generator
    (its running statistics made non-trivial so that batch norm matters)."""
    from omegaconf import OmegaConf

    text = "generator:" + lama_generator_config(ngf, blocks, lfu).replace("\n", "\n  ")
    config = OmegaConf.create(text + "\ntraining_model:\n  kind: default\n  concat_mask: true\n"
                              "visualizer:\n  kind: directory\n")
    folder = root / "big-lama"
    (folder / "models").mkdir(parents=True)
    OmegaConf.save(config, folder / "config.yaml")
    torch.manual_seed(seed)
    generator = FFCResNetGenerator(**{k: v for k, v in OmegaConf.to_container(config.generator, resolve=True).items()
                                      if k != "kind"})
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    generator.eval()
    state = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    state["discriminator.model0.0.weight"] = torch.randn(4, 3, 3, 3)  # the rest of a training checkpoint
    state["loss_resnet_pl.impl.conv1.weight"] = torch.randn(4, 3, 3, 3)
    checkpoint = {"epoch": 39, "global_step": 1000, "pytorch-lightning_version": "1.2.9",
                  "callbacks": {lightning_callback_class(): {"monitor": "val_ssim_fid100_f1_total_mean",
                                                             "best_model_score": torch.tensor(0.9)}},
                  "optimizer_states": [], "lr_schedulers": [], "state_dict": state,
                  "hparams_name": "kwargs", "hyper_parameters": {"config": config, "use_ddp": True}}
    checkpoint.update(extra_checkpoint or {})
    torch.save(checkpoint, folder / "models" / "best.ckpt")
    return folder, generator


class Payload:
    """Unpickling this creates ``path``: the proof that a loader ran code from a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))
