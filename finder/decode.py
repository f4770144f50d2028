"""Any photo file → RGB uint8 pixels at a requested size. (Minimal first version.)"""

from __future__ import annotations

import numpy as np
from PIL import Image

from finder.errors import DecodeError


def load_rgb(path: str, size: tuple[int, int]) -> np.ndarray:
    """Decode ``path`` to uint8 RGB of shape (height, width, 3); ``size`` is (width, height)."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize(size, Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DecodeError(str(e) or type(e).__name__) from None
