"""A model that lives outside benchkit: OpenCV's Telea inpainting over an export in the lama layout.

    benchkit export --datasets fashion-mnist-mini --masks center,thick --n-images 64 --layout lama --out E
    python examples/external_telea.py E P
    benchkit run --methods "predictions:P[name=telea-ext],telea,tv" --masks center,thick --n-images 64

This script imports nothing from benchkit: it reads what any model would (``N.png`` beside
``N_mask000.png``, 255 = hole), zeroes the hole as LaMa's ``bin/predict.py`` does, inpaints with a
radius of 3 pixels, writes ``N_mask000.png`` into the same sub-folder of the output folder, and copies
the export's manifest beside the predictions so that benchkit can check what they were made from.
"""
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np


def main(export: Path, out: Path) -> None:
    for mask_path in sorted(export.glob("*/*_mask000.png")):
        image_path = mask_path.with_name(mask_path.name.replace("_mask000", ""))
        image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
        hole = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
        image[hole] = 0  # the model never sees the missing pixels
        filled = cv2.inpaint(image, hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
        target = out / mask_path.relative_to(export)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), filled)
    shutil.copy(export / "manifest.json", out / "manifest.json")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
