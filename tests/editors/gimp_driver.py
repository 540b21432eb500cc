"""Runs inside GIMP 3 (gimp-console, python-fu-eval): calls the installed plug-in through the PDB.

GIMP's batch mode does not turn a script's failure into an exit code the test could trust, so the outcome
is the sentinel file written last, ``{"ok": true, "cases": [...]}`` or ``{"ok": false, "error": ...}``.
The job file named by $REMASTER_GIMP_JOB lists the cases (depth, input PNG, pipeline).
"""

import json
import os
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

job = json.load(open(os.environ["REMASTER_GIMP_JOB"]))
out = {"ok": False}
try:
    out["gimp"] = Gimp.version()
    procedure = Gimp.get_pdb().lookup_procedure("python-fu-remaster")
    out["registered"] = procedure is not None
    out["cases"] = []
    for index, case in enumerate(job["cases"]):
        precision = Gimp.Precision.U16_NON_LINEAR if case["depth"] == 16 else Gimp.Precision.U8_NON_LINEAR
        image = Gimp.Image.new_with_precision(case["width"], case["height"], Gimp.ImageBaseType.RGB, precision)
        layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(case["png"]))
        layer.set_name("input")
        image.insert_layer(layer, None, 0)
        config = procedure.create_config()
        config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
        config.set_property("image", image)
        config.set_core_object_array("drawables", [layer])
        config.set_property("preset", "custom")
        config.set_property("pipeline", case["pipeline"])
        values = procedure.run(config)
        record = {"status": values.index(0).value_nick}
        if values.length() > 1:
            record["message"] = str(values.index(1))
        layers = image.get_layers()  # top first
        record["image"] = [image.get_width(), image.get_height()]
        record["layers"] = [item.get_name() for item in layers]
        if record["status"] == "success":
            made = layers[0]
            buffer = made.get_buffer()
            record["new_layer"] = [made.get_width(), made.get_height()]
            record["offsets"] = list(made.get_offsets()[1:])
            raw = buffer.get(buffer.get_extent(), 1.0, f"R'G'B'A u{case['depth']}", Gegl.AbyssPolicy.CLAMP)
            record["pixels"] = os.path.join(job["out"], f"case{index}.raw")
            with open(record["pixels"], "wb") as file:
                file.write(raw)
        out["cases"].append(record)
        image.delete()
    out["ok"] = True
except Exception:
    out["error"] = traceback.format_exc()
with open(os.path.join(job["out"], "sentinel.json"), "w") as sentinel:
    json.dump(out, sentinel)
