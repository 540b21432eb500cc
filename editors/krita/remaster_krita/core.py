"""The plug-in's work without any dialog: layer -> PNG -> server -> new layer. Driven by the tests too."""

from __future__ import annotations

from typing import Any, Callable

from PyQt5.QtGui import QImage

from . import remaster_client as client_module

SUPPORTED_DEPTHS = {"U8": 8, "U16": 16}


class PluginError(Exception):
    """Something the user should read in a message box."""


def layer_png(document: Any, node: Any) -> tuple[bytes, int]:
    """The layer's pixels over the whole canvas as PNG bytes (16-bit for 16-bit documents), and that depth."""
    model, depth_name = node.colorModel(), node.colorDepth()
    if model != "RGBA" or depth_name not in SUPPORTED_DEPTHS:
        raise PluginError(f"the layer is {model} {depth_name}; remaster takes RGB/Alpha 8 or 16-bit integer "
                          "layers (Image > Convert Image Color Space)")
    depth = SUPPORTED_DEPTHS[depth_name]
    width, height = document.width(), document.height()
    bgra = bytes(node.pixelData(0, 0, width, height))  # Krita keeps RGBA as B, G, R, A in native byte order
    rgba = client_module.swap_red_blue(bgra, 4, depth)
    return client_module.encode_png(rgba, width, height, 4, depth), depth


def decode_for_layer(png: bytes, depth: int) -> tuple[bytes, int, int]:
    """PNG bytes -> Krita's BGRA pixels at ``depth`` bits, with the width and height."""
    image = QImage.fromData(png)
    if image.isNull():
        raise PluginError("the server's result is not an image Qt can read")
    if depth == 16:
        image = image.convertToFormat(QImage.Format_RGBA64)
        data = image.constBits().asstring(image.sizeInBytes())
        return client_module.swap_red_blue(data, 4, 16), image.width(), image.height()
    # ARGB32 words lie in memory as B, G, R, A on the little-endian machines Krita runs on: Krita's own order.
    image = image.convertToFormat(QImage.Format_ARGB32)
    return image.constBits().asstring(image.sizeInBytes()), image.width(), image.height()


def remaster_layer(document: Any, node: Any, pipeline: str, client: client_module.Client, *,
                   progress: Callable[[float], Any] | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> Any:
    """Run ``pipeline`` on ``node`` and add the result above it as a new layer; returns the new node.

    An upscale grows the canvas by the same factor (other layers keep their pixels, anchored top-left).
    """
    png, depth = layer_png(document, node)
    result = client.run(png, pipeline, progress=progress, should_cancel=should_cancel)
    pixels, width, height = decode_for_layer(result, depth)
    if (width, height) != (document.width(), document.height()):
        document.resizeImage(0, 0, width, height)
    layer = document.createNode(f"{node.name()} (remaster)", "paintlayer")
    node.parentNode().addChildNode(layer, node)
    layer.setPixelData(pixels, 0, 0, width, height)
    document.setActiveNode(layer)
    document.refreshProjection()
    return layer
