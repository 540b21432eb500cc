"""The "Remaster…" action and its dialog."""

from __future__ import annotations

import shlex

from krita import Extension, Krita
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (QApplication, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit,
                             QMessageBox, QProgressDialog)

from . import remaster_client as client_module
from .core import PluginError, remaster_layer

SETTINGS = "remaster"
CUSTOM = "custom pipeline"


class RemasterDialog(QDialog):
    """Preset (upscale x2/x4, ...), face restore on/off, a custom pipeline string, and how to start the server.

    ``presets`` is what ``Client.presets()`` returned (the server's); the built-in fallback list if not given.
    """

    def __init__(self, parent=None, presets=None):
        super().__init__(parent)
        self.setWindowTitle("Remaster")
        app = Krita.instance()
        self.presets = list(client_module.FALLBACK_PRESETS if presets is None else presets)
        self.preset = QComboBox()
        for index, preset in enumerate(client_module.dialog_presets(self.presets)):
            self.preset.addItem(preset["label"], preset["id"])
            self.preset.setItemData(index, preset.get("description") or preset["pipeline"], Qt.ToolTipRole)
        self.preset.addItem(CUSTOM, None)
        self.preset.setCurrentText(app.readSetting(SETTINGS, "preset", "upscale x4"))
        self.face = QCheckBox("Restore faces (GFPGAN)")
        self.face.setChecked(app.readSetting(SETTINGS, "face", "false") == "true")
        self.custom = QLineEdit(app.readSetting(SETTINGS, "custom", "realesrgan-x4plus | gfpgan"))
        self.custom.setToolTip("any remaster pipeline, e.g. bicubic(scale=2) | sepia")
        self.command = QLineEdit(app.readSetting(SETTINGS, "command", "remaster"))
        self.command.setToolTip("how to run remaster if no server is running, e.g. /home/me/venv/bin/remaster")
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Preset", self.preset)
        form.addRow("", self.face)
        form.addRow("Custom pipeline", self.custom)
        form.addRow("remaster command", self.command)
        form.addRow(buttons)
        self.preset.currentTextChanged.connect(self._update)
        self._update()

    def _update(self) -> None:
        preset_id = self.preset.currentData()
        self.custom.setEnabled(preset_id is None)
        # The box stays as the user left it; it is only greyed out where the server has no face variant.
        self.face.setEnabled(preset_id is not None and client_module.face_variant(self.presets, preset_id) is not None)

    def pipeline(self) -> str:
        preset_id = self.preset.currentData()
        if preset_id is None:
            return self.custom.text().strip()
        faces = self.face.isChecked() and self.face.isEnabled()
        return client_module.preset_pipeline(self.presets, preset_id, faces=faces)

    def save(self) -> None:
        app = Krita.instance()
        app.writeSetting(SETTINGS, "preset", self.preset.currentText())
        app.writeSetting(SETTINGS, "face", "true" if self.face.isChecked() else "false")
        app.writeSetting(SETTINGS, "custom", self.custom.text())
        app.writeSetting(SETTINGS, "command", self.command.text())


class RemasterExtension(Extension):
    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:
        action = window.createAction("remaster", "Remaster…", "tools/scripts")
        action.triggered.connect(self.run)

    def run(self) -> None:
        app = Krita.instance()
        document = app.activeDocument()
        parent = app.activeWindow().qwindow() if app.activeWindow() else None
        if document is None or document.activeNode() is None:
            QMessageBox.information(parent, "Remaster", "Open an image and select a paint layer first.")
            return
        # The running server's presets; without one (it is started after the dialog, with the command chosen
        # there) or from an older server, the built-in list.
        dialog = RemasterDialog(parent, client_module.running_presets())
        if dialog.exec_() != QDialog.Accepted:
            return
        dialog.save()
        progress = QProgressDialog("Remastering…", "Cancel", 0, 100, parent)
        progress.setWindowModality(Qt.WindowModal)
        progress.setMinimumDuration(0)

        def show(fraction: float) -> None:
            progress.setValue(int(fraction * 100))
            QApplication.processEvents()

        try:
            progress.setLabelText("Connecting to the remaster server (starting it if needed)…")
            QApplication.processEvents()
            client = client_module.connect(shlex.split(dialog.command.text()) or ["remaster"])
            progress.setLabelText("Remastering…")
            remaster_layer(document, document.activeNode(), dialog.pipeline(), client, progress=show,
                           should_cancel=progress.wasCanceled)
        except (client_module.ServerError, PluginError) as exc:
            if str(exc) != "cancelled":
                QMessageBox.warning(parent, "Remaster", str(exc))
        finally:
            progress.close()
