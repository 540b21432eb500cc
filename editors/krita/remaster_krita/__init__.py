"""Krita 5 plug-in: Tools > Scripts > Remaster… sends the active layer to a local ``remaster serve``.

Install: see docs/editors.md (``remaster editor-plugin install krita`` copies this folder, the .desktop file
and the shared client into Krita's pykrita folder).
"""

from krita import Krita

from .extension import RemasterExtension

Krita.instance().addExtension(RemasterExtension(Krita.instance()))
