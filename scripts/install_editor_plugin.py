#!/usr/bin/env python3
"""Copy the Krita or GIMP plug-in, with the shared client, into the editor's plug-in folder.

Usage: python3 scripts/install_editor_plugin.py krita|gimp [DEST]

DEST defaults to the editor's per-user folder (printed). The shared client
(src/remaster/server/client.py, standard library only) is copied next to the plug-in
as remaster_client.py, so the editor's Python needs nothing installed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "src" / "remaster" / "server" / "client.py"


def default_dest(editor: str) -> Path:
    home = Path.home()
    if editor == "krita":
        if sys.platform == "win32":
            return Path(os.environ["APPDATA"]) / "krita" / "pykrita"
        if sys.platform == "darwin":
            return home / "Library" / "Application Support" / "krita" / "pykrita"
        return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "krita" / "pykrita"
    if sys.platform == "win32":
        return Path(os.environ["APPDATA"]) / "GIMP" / "3.0" / "plug-ins"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "GIMP" / "3.0" / "plug-ins"
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "GIMP" / "3.0" / "plug-ins"


def install(editor: str, dest: Path) -> list[Path]:
    """Copy the plug-in into ``dest``; returns what was written."""
    written = []
    if editor == "krita":
        package = dest / "remaster_krita"
        package.mkdir(parents=True, exist_ok=True)
        written.append(Path(shutil.copy2(ROOT / "editors/krita/remaster_krita.desktop", dest)))
        for source in sorted((ROOT / "editors/krita/remaster_krita").glob("*.py")):
            written.append(Path(shutil.copy2(source, package)))
        written.append(Path(shutil.copy2(CLIENT, package / "remaster_client.py")))
    elif editor == "gimp":
        folder = dest / "remaster"  # GIMP 3 runs plug-ins/NAME/NAME.py
        folder.mkdir(parents=True, exist_ok=True)
        script = Path(shutil.copy2(ROOT / "editors/gimp/remaster/remaster.py", folder))
        script.chmod(0o755)
        written += [script, Path(shutil.copy2(CLIENT, folder / "remaster_client.py"))]
    else:
        raise SystemExit(f"unknown editor {editor!r}: use krita or gimp")
    return written


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("krita", "gimp") or len(argv) > 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    dest = Path(argv[1]).expanduser() if len(argv) > 1 else default_dest(argv[0])
    for path in install(argv[0], dest):
        print(f"installed {path}")
    if argv[0] == "krita":
        print("Krita: Settings > Configure Krita > Python Plugin Manager > tick 'Remaster', then restart Krita")
    else:
        print("GIMP 3: restart GIMP; the plug-in is Filters > Enhance > Remaster…")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
