"""benchkit's own plugins, by concept (see docs/architecture.md), and what they share."""
from pathlib import Path

SHIPPED_MODELS = (Path(__file__).parent / "models",)  # the trained models benchkit ships, searched last
