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
    """Preset (upscale x2/x4), face restore on/off, a custom pipeline string, and how to start the server."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Remaster")
        app = Krita.instance()
        self.preset = QComboBox()
        self.preset.addItems([*client_module.PRESETS, CUSTOM])
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
        custom = self.preset.currentText() == CUSTOM
        self.custom.setEnabled(custom)
        self.face.setEnabled(not custom)

    def pipeline(self) -> str:
        if self.preset.currentText() == CUSTOM:
            return self.custom.text().strip()
        return client_module.preset_pipeline(self.preset.currentText(), faces=self.face.isChecked())

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
        dialog = RemasterDialog(parent)
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
