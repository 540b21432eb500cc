#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Enhance > Remaster… sends the active layer to a local ``remaster serve``.

Also a PDB procedure, ``python-fu-remaster``, for batch scripts (see docs/editors.md). The result comes back
as a new layer above the source, the canvas grows with upscales, and all of it is one undo step.
Install: ``python3 scripts/install_editor_plugin.py gimp`` (copies this file and remaster_client.py).
"""

import os
import shlex
import sys
import tempfile

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject, Gio  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import remaster_client  # noqa: E402  (the shared, standard-library-only client, copied next to this file)

PROCEDURE = "python-fu-remaster"
CUSTOM = "custom"


_presets = None


def presets():
    """The running server's presets (asked once per plug-in run), or the built-in list when none runs or it is older.

    GIMP builds the procedure, choice list included, before the server is started with the dialog's command.
    """
    global _presets
    if _presets is None:
        _presets = remaster_client.running_presets()
    return _presets


def _preset_choice():
    choice = Gimp.Choice.new()
    listed = remaster_client.dialog_presets(presets())
    for index, preset in enumerate(listed):
        choice.add(preset["id"], index, preset["label"], preset.get("description") or preset["pipeline"])
    choice.add(CUSTOM, len(listed), "custom pipeline", "the pipeline string below")
    return choice


def _default_preset():
    listed = remaster_client.dialog_presets(presets())
    return "upscale-x4" if any(p["id"] == "upscale-x4" for p in listed) else (listed[0]["id"] if listed else CUSTOM)


def pipeline_from(config):
    """The pipeline string the procedure's arguments ask for."""
    preset = config.get_property("preset")
    if preset == CUSTOM:
        text = config.get_property("pipeline").strip()
        if not text:
            raise remaster_client.ServerError("the custom pipeline is empty", hint="e.g. realesrgan-x4plus")
        return text
    return remaster_client.preset_pipeline(presets(), preset, faces=config.get_property("faces"))


def layer_png(drawable):
    """The drawable's pixels as PNG bytes: 16-bit unless the image is 8-bit, always RGBA (gamma-encoded)."""
    deep = drawable.get_image().get_precision() not in (Gimp.Precision.U8_LINEAR, Gimp.Precision.U8_NON_LINEAR,
                                                        Gimp.Precision.U8_PERCEPTUAL)
    buffer = drawable.get_buffer()
    rect = buffer.get_extent()
    depth = 16 if deep else 8
    pixels = buffer.get(rect, 1.0, f"R'G'B'A u{depth}", Gegl.AbyssPolicy.CLAMP)
    return remaster_client.encode_png(pixels, rect.width, rect.height, 4, depth)


def remaster_drawable(image, drawable, pipeline, client, progress=None):
    """Run ``pipeline`` on ``drawable`` and insert the result above it as one undo step; returns the new layer."""
    png = layer_png(drawable)
    result = client.run(png, pipeline, progress=progress)
    handle, path = tempfile.mkstemp(prefix="remaster-", suffix=".png")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(result)
        image.undo_group_start()
        try:
            layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path))
            layer.set_name(f"{drawable.get_name()} (remaster)")
            fx = layer.get_width() / drawable.get_width()
            fy = layer.get_height() / drawable.get_height()
            if (fx, fy) != (1.0, 1.0):
                image.resize(round(image.get_width() * fx), round(image.get_height() * fy), 0, 0)
            parent = drawable.get_parent()
            image.insert_layer(layer, parent, image.get_item_position(drawable))
            _, x, y = drawable.get_offsets()
            layer.set_offsets(round(x * fx), round(y * fy))
            image.set_selected_layers([layer])
        finally:
            image.undo_group_end()
    finally:
        os.unlink(path)
    return layer


class Remaster(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROCEDURE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("Remaster…")
        procedure.add_menu_path("<Image>/Filters/Enhance")
        procedure.set_documentation(
            "Upscale or restore the layer with remaster",
            "Sends the layer to a local 'remaster serve' (started if none runs) and adds the result as a new "
            "layer; upscales grow the canvas. One undo step.", name)
        procedure.set_attribution("remaster", "remaster", "2026")
        flags = GObject.ParamFlags.READWRITE
        procedure.add_choice_argument("preset", "_Preset", "what to do", _preset_choice(), _default_preset(),
                                      flags)
        procedure.add_boolean_argument("faces", "Restore _faces (GFPGAN)", "append face restoration", False, flags)
        procedure.add_string_argument("pipeline", "Custom _pipeline", "used when the preset is 'custom', "
                                      "e.g. bicubic(scale=2) | sepia", "", flags)
        procedure.add_string_argument("command", "remaster _command", "how to start remaster when no server runs",
                                      "remaster", flags)
        return procedure

    def run(self, procedure, run_mode, image, drawables, config, data):
        if len(drawables) != 1:
            return self._fail(procedure, "select exactly one layer")
        if run_mode == Gimp.RunMode.INTERACTIVE:
            gi.require_version("GimpUi", "3.0")
            from gi.repository import GimpUi

            GimpUi.init(PROCEDURE)
            dialog = GimpUi.ProcedureDialog.new(procedure, config, "Remaster")
            dialog.fill(None)
            if not dialog.run():
                dialog.destroy()
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
            dialog.destroy()
        try:
            pipeline = pipeline_from(config)
            Gimp.progress_init("Remaster: connecting to the server…")
            command = shlex.split(config.get_property("command") or "") or ["remaster"]
            client = remaster_client.connect(command)
            Gimp.progress_set_text(f"Remaster: {pipeline}")
            remaster_drawable(image, drawables[0], pipeline, client, progress=Gimp.progress_update)
            Gimp.progress_end()
        except remaster_client.ServerError as exc:
            return self._fail(procedure, str(exc))
        Gimp.displays_flush()
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())

    @staticmethod
    def _fail(procedure, message):
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(f"Remaster: {message}"))


Gimp.main(Remaster.__gtype__, sys.argv)
