"""What every published-model method shares: files keyed by digest, the convention adapter around
the model's own forward pass, and the model card ``benchkit info`` prints."""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import torch

from benchkit.builtins.published.convention import Convention
from benchkit.builtins.published.cropping import inpaint_windows
from benchkit.errors import UserError
from benchkit.files import file_digest
from benchkit.plugin.interfaces import Method, MethodContext

EXTERNAL_ROUTE = ("export the model's predictions in its own environment and score them with predictions:DIR "
                  "(docs: external models)")


class PublishedModel(Method):
    """A model loaded from local files. Subclasses set ``self.files`` (every file the model reads)
    and ``self.convention`` in ``__init__``, load in :meth:`load`, and run the model in its own
    convention in :meth:`predict`; benchkit composites the raw output as for every method. A
    subclass whose files can be checked more cheaply than by loading them overrides :meth:`verify`."""

    in_default_run = False
    libraries: tuple[str, ...] = ("torch",)  # the distributions that run the model
    files: list[Path]
    convention: Convention

    def check(self, context: MethodContext) -> None:
        for path in self.files:
            if not path.is_file():
                raise UserError(f"{self.name} model file {path} does not exist: check the path")
        self.verify()

    def verify(self) -> None:
        """Every refusal the files can give (format, pickled code, layout), before the first write.
        Default: load them on the CPU and let go."""
        self.load(torch.device("cpu"))
        self.release()

    def input_files(self, context: MethodContext, mask: str) -> list[Path]:
        return list(self.files)

    def setup(self, context: MethodContext) -> None:
        self.load(context.device)

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, known: torch.Tensor, *, mask: str | None = None,
                image_ids=()) -> torch.Tensor:
        ids = list(image_ids) or list(range(len(images)))  # needs_cell methods are given the images' ids
        if self.convention.strategy == "crop":
            return inpaint_windows(images, known, self.convention.margin,
                                   lambda image, part, index: self.run_sized(image, part, ids[index:index + 1]))
        return self.run_sized(images, known, ids)

    def run_sized(self, images: torch.Tensor, known: torch.Tensor, image_ids: list[int]) -> torch.Tensor:
        """The model on images of any size: to its convention, :meth:`predict`, and back."""
        image, mask = self.convention.to_model(images, known)
        return self.convention.from_model(self.predict(image, mask, image_ids), images.shape)

    @abstractmethod
    def load(self, device: torch.device) -> None:
        """Read the files and make the model ready on ``device``; refusals are UserErrors."""

    def release(self) -> None:
        """Drop what :meth:`load` made (the model's memory)."""
        self.__dict__.pop("model", None)

    @abstractmethod
    def predict(self, image: torch.Tensor, mask: torch.Tensor, image_ids: list[int]) -> torch.Tensor:
        """The model's output for inputs already in its convention (size, polarity, scale);
        ``image_ids`` are the images' positions in the test split, for models whose prompts or
        random draws depend on the image."""

    def provenance(self) -> dict[str, str]:
        import importlib.metadata

        versions = []
        for library in self.libraries:
            try:
                versions.append(f"{library} {importlib.metadata.version(library)}")
            except importlib.metadata.PackageNotFoundError:
                versions.append(f"{library} not installed")
        return {"loader": f"{self.name} ({type(self).__module__})", "convention": self.convention.describe(),
                "libraries": ", ".join(versions)}

    def model_card(self) -> dict[str, str]:
        card = self.provenance()
        card.update({f"file {path.name}": f"{path} sha256 {file_digest(path)}" for path in self.files})
        return card


def parameter_count(module: torch.nn.Module) -> str:
    """A module's parameter count, as model cards print it (``27.0 M``)."""
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.1f} M"
