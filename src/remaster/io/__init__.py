"""Reading and writing images: everything outside becomes an :class:`~remaster.io.image.Image`.

:func:`load` turns a path, bytes, a PIL image, a numpy array or a torch tensor
into the one internal representation; :func:`save` writes it back to disk
atomically; :func:`convert_like` hands a result back in the same kind of object
the caller passed in. Quantisation to integers happens exactly once, at the
very end (:func:`to_numpy`, :func:`save`), so stages never lose precision in
between.

Each concern has its module, and everything public is re-exported here, so
``remaster.io`` stays the one place callers look:

* :mod:`~remaster.io.decoding`: :func:`load` (formats, pixel limit, EXIF
  orientation, ICC/EXIF/DPI), :func:`max_pixels_from_env`,
  :data:`DEFAULT_MAX_PIXELS`;
* :mod:`~remaster.io.conversion`: :func:`to_numpy`, :func:`to_pil`,
  :func:`to_tensor`, :func:`convert_like`, :func:`quantise` (the one
  quantisation), :func:`is_quantised`, :func:`dequantised`;
* :mod:`~remaster.io.intbuffer`: :class:`~remaster.io.intbuffer.IntegerBuffer`,
  the final integer image filled band by band (imported by the pipeline, not here);
* :mod:`~remaster.io.encoding`: :func:`save`, :func:`encode`,
  :data:`SAVE_FORMATS` (the PNG/JPEG/WebP/TIFF writers);
* :mod:`~remaster.io.atomic`: :func:`write_atomic`, :func:`refuse_overwrite`.

:mod:`remaster.io.image` imports ``conversion`` and ``encoding`` for
``Image.save``, ``Image.to_pil`` and ``Image.to_numpy``. Those only read an
``Image``; ``decoding`` builds them, so it imports :mod:`remaster.io.image`, and
this package imports it only when one of its names is first asked for:
importing it here would make ``image -> io -> decoding -> image`` a cycle.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from remaster.io.atomic import refuse_overwrite, write_atomic
from remaster.io.conversion import convert_like, dequantised, is_quantised, quantise, to_numpy, to_pil, to_tensor
from remaster.io.encoding import SAVE_FORMATS, encode, save
from remaster.io.header import Header

if TYPE_CHECKING:
    from remaster.io.decoding import DEFAULT_MAX_PIXELS, HeaderCheck, load, max_pixels_from_env, read_header

__all__ = [
    "write_atomic",
    "DEFAULT_MAX_PIXELS",
    "SAVE_FORMATS",
    "max_pixels_from_env",
    "load",
    "save",
    "encode",
    "to_pil",
    "to_numpy",
    "to_tensor",
    "convert_like",
    "quantise",
    "is_quantised",
    "dequantised",
    "refuse_overwrite",
    "Header",
    "HeaderCheck",
    "read_header",
]

_FROM_DECODING = ("DEFAULT_MAX_PIXELS", "max_pixels_from_env", "load", "read_header", "HeaderCheck")


def __getattr__(name: str) -> Any:
    if name not in _FROM_DECODING:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(".decoding", __name__), name)
    globals()[name] = value  # later lookups (and monkeypatch.setattr) see a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
