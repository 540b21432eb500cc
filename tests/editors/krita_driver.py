"""Runs inside Krita (kritarunner): drives the installed plug-in against a real server, records what it made.

kritarunner exits 0 even when the script fails, so the outcome is the sentinel file written last:
``{"ok": true, "cases": [...]}`` or ``{"ok": false, "error": traceback}``. Configuration comes from the JSON
file named by $REMASTER_KRITA_JOB: the plug-in folder, the server file, and the cases (depth, size, raw BGRA
input pixels, pipeline).
"""

import json
import os
import sys
import traceback


def main(_args=None):
    job = json.loads(open(os.environ["REMASTER_KRITA_JOB"]).read())
    out = {"ok": False}
    try:
        sys.path.insert(0, job["pykrita"])
        os.environ["REMASTER_SERVER_FILE"] = job["server_file"]
        import remaster_krita  # noqa: F401  (registers the extension, as Krita does at start-up)
        from krita import Krita
        from remaster_krita import core, remaster_client

        app = Krita.instance()
        out["krita"] = app.version()
        out["extension_registered"] = any(type(e).__name__ == "RemasterExtension" for e in app.extensions())
        from remaster_krita.extension import CUSTOM, RemasterDialog

        client = remaster_client.connect(command=None)  # the test's server, found through the server file
        dialog = RemasterDialog(presets=client.presets())  # what the dialog turns the server's presets into
        out["presets"] = [dialog.preset.itemText(i) for i in range(dialog.preset.count())]
        out["pipelines"] = {}
        for preset, faces in (("upscale x4", False), ("upscale x2", True), (CUSTOM, True)):
            dialog.preset.setCurrentText(preset)
            dialog.face.setChecked(faces)
            dialog.custom.setText(" bicubic(scale=3) ")
            out["pipelines"][f"{preset}/{faces}"] = [dialog.pipeline(), dialog.custom.isEnabled()]
        dialog.deleteLater()
        out["cases"] = []
        for index, case in enumerate(job["cases"]):
            width, height = case["width"], case["height"]
            document = app.createDocument(width, height, f"case{index}", "RGBA", case["depth"], "", 72.0)
            layer = document.createNode("input", "paintlayer")
            document.rootNode().addChildNode(layer, None)
            layer.setPixelData(open(case["pixels"], "rb").read(), 0, 0, width, height)
            document.setActiveNode(layer)
            document.refreshProjection()
            document.waitForDone()
            fractions = []
            try:
                made = core.remaster_layer(document, layer, case["pipeline"], client, progress=fractions.append)
            except remaster_client.ServerError as exc:  # what the dialog would show in its message box
                out["cases"].append({"error": str(exc), "document": [document.width(), document.height()],
                                     "layers": [node.name() for node in document.rootNode().childNodes()]})
                document.close()
                continue
            document.waitForDone()
            raw = bytes(made.pixelData(0, 0, document.width(), document.height()))
            result_path = os.path.join(job["out"], f"case{index}.raw")
            open(result_path, "wb").write(raw)
            out["cases"].append({
                "document": [document.width(), document.height()],
                "layers": [node.name() for node in document.rootNode().childNodes()],
                "new_layer": {"name": made.name(), "depth": made.colorDepth(), "model": made.colorModel(),
                              "bounds": [made.bounds().width(), made.bounds().height()]},
                "pixels": result_path, "last_progress": fractions[-1] if fractions else None,
            })
            document.close()
        out["ok"] = True
    except Exception:
        out["error"] = traceback.format_exc()
    with open(os.path.join(job["out"], "sentinel.json"), "w") as sentinel:
        json.dump(out, sentinel)
