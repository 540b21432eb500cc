"""The server opens no file a client names: model files given as stages, and stage parameters that name files
(:attr:`Param.names_file <remaster.plugin.Param>`), are refused unless they lie in a folder the server was started
with (``remaster serve --allow-files FOLDER``).

Decided from the stage calls before any stage is built, so a refused path is never looked at: not read, not
stat-ed (which would tell a client whether a file exists), not opened as ``/dev/zero``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from remaster.errors import UsageError
from remaster.plugin.host import PluginHost
from remaster.plugin.syntax import StageCall, names_model_file, parse_stage
from remaster.server.http import HTTPError

__all__ = ["refuse_client_files"]


def refuse_client_files(calls: Sequence[StageCall], host: PluginHost, allowed: Sequence[Path]) -> None:
    """Raise a 403 when a stage call names a file outside ``allowed``.

    A call whose name is no registered stage but reads as a model file (a model file's ending, or a path) names
    a file; so does the value of a parameter declared ``names_file``, unless it is a registered stage (the face
    stage's ``background``). A name that is neither is left to the pipeline, which says it is unknown.

    Raises:
        HTTPError: 403, naming the stage or parameter, never whether the file exists.
    """
    for call in calls:
        if call.name not in host.stages:
            if names_model_file(call.name):
                _allowed(call.name, allowed, "the model file given as a stage")
            continue
        for param in host.stages.get(call.name).params:
            value = call.params.get(param.name)
            if param.names_file and value is not None and not _is_stage(str(value), host):
                _allowed(str(value), allowed, f"{call.name}'s parameter {param.name}")


def _is_stage(text: str, host: PluginHost) -> bool:
    try:
        return parse_stage(text).name in host.stages
    except UsageError:
        return False


def _allowed(text: str, allowed: Sequence[Path], what: str) -> None:
    if allowed:
        try:
            resolved = Path(text).expanduser().resolve()
        except (OSError, RuntimeError, ValueError):
            resolved = None
        if resolved is not None and any(resolved.is_relative_to(folder) for folder in allowed):
            return
    raise HTTPError(403, f"{what} names a file, and the server opens no file a client names",
                    hint="send the stages by name; whoever starts the server can allow a folder of model files with "
                         "'remaster serve --allow-files FOLDER'", kind="FileNotAllowed")
