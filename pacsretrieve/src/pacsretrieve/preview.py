"""PNG thumbnails of retrieved series, for a quick look (``--preview``).

One thumbnail per series, of its middle instance (the middle frame of a
multi-frame one), scaled to 8 bits between its lowest and highest value, and
shrunk to at most ``THUMBNAIL_SIZE`` pixels a side. It is written next to the
series folder, as ``<series folder>.png``, never inside it. A preview is a
convenience: one that cannot be made is a warning, never a failure.
"""

import logging
import struct
import zlib
from pathlib import Path
from typing import Any

from pacscommon.errors import PullError

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_GRAY = 0  # PNG colour types (ISO/IEC 15948 11.2.2)
PNG_RGB = 2


def preview_available() -> bool:
    """Return whether the pixel decoding a preview needs is installed."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def write_preview(series_folder: Path, SeriesInstanceUID: str) -> Path | None:
    """Write the thumbnail of a series folder; return its path, or None."""
    files = sorted(series_folder.glob("*.dcm"))
    if not files:
        return None
    source = files[len(files) // 2]
    target = series_folder.with_name(series_folder.name + ".png")
    try:
        pixels = _thumbnail(source)
        target.write_bytes(encode_png(pixels))
    except PullError:
        raise  # a stop (SIGTERM) is not a preview's failure
    except Exception as exc:  # noqa: BLE001 - a preview never fails the pull
        logger.warning("series %s: no preview: %s", SeriesInstanceUID, exc)
        return None
    return target


def _thumbnail(path: Path) -> Any:
    """Return the 8-bit, shrunk image of one instance as a numpy array."""
    import numpy as np
    from pydicom import dcmread
    from pydicom.pixels import pixel_array

    ds = dcmread(path, stop_before_pixels=True)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    # as_rgb: YCbCr images come back as RGB.
    frame = pixel_array(path, index=frames // 2 if frames > 1 else None, as_rgb=True)
    step = max(1, -(-max(frame.shape[:2]) // THUMBNAIL_SIZE))
    frame = np.asarray(frame[::step, ::step], dtype=np.float64)
    low, high = float(frame.min()), float(frame.max())
    scaled = (frame - low) * (255.0 / (high - low)) if high > low else frame * 0
    image = scaled.astype(np.uint8)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        image = 255 - image
    return image


def encode_png(image: Any) -> bytes:
    """Return the PNG encoding of an 8-bit grey (H, W) or RGB (H, W, 3) array."""
    height, width = image.shape[:2]
    colour = PNG_RGB if image.ndim == 3 else PNG_GRAY
    # Each row starts with filter type 0 (none).
    rows = b"".join(b"\x00" + bytes(row.tobytes()) for row in image)
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    """Return one PNG chunk: length, type, data, CRC of type and data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
