"""Image files as users have them -> (H, W, 3) uint8 RGB, the one reader of every image nnlab
takes (the image-folder datasets and ``nnlab predict``).

What a file holds is scaled to 0-255, never clipped:

* 8-bit RGB and grey as they are; 1-bit black and white; CMYK, YCbCr, LAB and HSV through
  Pillow's conversion to RGB;
* 16-bit (PNG, TIFF: Pillow's modes ``I;16*`` and ``I``): value / 257, so 65535 is 255 and
  mid-grey 32768 is 128;
* floating point (TIFF, mode ``F``): values in [0, 1] times 255; a float image whose values
  exceed 1 is taken as 0-255; both then clipped to that range;
* a palette, with or without a transparent colour, through its colours;
* alpha (RGBA, LA, PA, a palette's transparency): composited onto white, as a viewer shows it;
* EXIF orientation: the image is turned upright, as a phone's photo is shown.

A file larger than :data:`MAX_PIXELS` pixels (a decompression bomb, or a photo far beyond
what a 32 x 32 classifier needs) is refused in one line before it is decoded.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from nnlab.errors import NnlabError

MAX_PIXELS = 89_478_485  # Pillow's own warning threshold (about 9,459 x 9,459)
RESAMPLING = "bicubic"  # how every image is resized: training, predict, model.json, docs


class ImageError(NnlabError):
    """A file that is not an image nnlab can read (or one too large to decode safely)."""


def _from_image(image) -> np.ndarray:  # noqa: ANN001 (a PIL.Image.Image)
    """A decoded PIL image -> (H, W, 3) uint8 RGB, scaled as the module docstring says."""
    from PIL import Image

    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if values.size == 0 or values.max() <= 1.0 else 1.0
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_image(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """The image in ``source`` (a path, or a file's bytes named ``name``) as (H, W, 3) uint8
    RGB, upright. ImageError, naming the file, for anything else: no such file, not an
    image, damaged, or more than :data:`MAX_PIXELS` pixels."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = name or str(source)
    if isinstance(source, str | Path) and not Path(source).is_file():
        what = "a folder, not an image" if Path(source).is_dir() else "no such file"
        raise ImageError(f"{name}: {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            with opened as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ImageError(f"{name}: {width} x {height} pixels, more than the "
                                     f"{MAX_PIXELS:,} nnlab decodes (a decompression bomb?)")
                image.load()
                return _from_image(ImageOps.exif_transpose(image))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: more pixels than nnlab decodes ({MAX_PIXELS:,}): a "
                         "decompression bomb?") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        why = "" if isinstance(e, UnidentifiedImageError) else \
            f"; damaged or unsupported ({e.__class__.__name__})"
        raise ImageError(f"{name}: not an image nnlab can read (PNG, JPEG, TIFF, BMP, GIF or "
                         f"WebP){why}") from None


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: bicubic, antialiased, the aspect ratio not
    kept (the whole image is squeezed into the square, as CIFAR-10's photos were)."""
    if rgb.shape[:2] == (size, size):
        return rgb
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC))
