"""The plugin module named by the entry point: registration only, no heavy imports."""

from __future__ import annotations

from collections.abc import Callable

from remaster.plugin import Param, StageInfo, StageKind, StageSpec, hookimpl


@hookimpl
def remaster_register_stages(register: Callable[[StageSpec], None]) -> None:
    register(StageSpec(
        name="sepia",
        kind=StageKind.FILTER,
        # A string: the module is imported only when a pipeline first uses the stage.
        factory="remaster_example_sepia.stage:Sepia",
        summary="warm brown tone, like an old print",
        params=(Param("strength", float, 1.0, help="0 keeps the image, 1 is full sepia", min=0.0, max=1.0),),
        info=StageInfo(in_channels=(3,), tile_overlap=0),
    ))
