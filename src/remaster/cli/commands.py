"""remaster's own commands, registered as a built-in plugin through the hook third-party commands use.

The ``remaster`` program gives this module to the plugin host as one of its
built-ins (:data:`PLUGIN`), so these commands are registered before any
installed plugin and keep their names. Each command's module is named by a
string, as a third party would name it: the parser imports the ``arguments``
functions (cheap, torch-free), and only the command that runs is imported for
its ``run``.
"""

from __future__ import annotations

from collections.abc import Callable

from remaster.plugin import Command, hookimpl

#: The name this plugin is registered and credited under (``remaster plugins`` lists it).
PLUGIN = __name__

COMMANDS = (
    Command("upscale", help="upscale images (default model: the default pipeline's upscaler)",
            arguments="remaster.cli.run:upscale_arguments", run="remaster.cli.run:upscale"),
    Command("run", help='run any pipeline, e.g. "degrade.jpeg(quality=30) | bicubic(scale=2)"',
            arguments="remaster.cli.run:run_arguments", run="remaster.cli.run:run"),
    Command("degrade", help="make images worse on purpose (training/evaluation pairs)",
            arguments="remaster.cli.run:degrade_arguments", run="remaster.cli.run:degrade"),
    Command("stages", help="list every stage with its kind, parameters and defaults",
            run="remaster.cli.listing:stages"),
    Command("plugins", help="list plugins with their versions and what each registered",
            run="remaster.cli.listing:plugins"),
    Command("devices", help="list the CPU, CUDA and Vulkan devices and what --device auto takes",
            run="remaster.cli.devices:devices"),
    Command("weights", help="list, download, import and check model weights",
            arguments="remaster.cli.weights:weights_arguments", run="remaster.cli.weights:weights"),
    Command("cache", help="list and remove the compiled artifacts remaster built on this machine (--compile)",
            arguments="remaster.cli.cache:cache_arguments", run="remaster.cli.cache:cache"),
    Command("serve", help="run the local HTTP service for the GIMP/Krita plug-ins (docs/editors.md)",
            arguments="remaster.cli.serve:serve_arguments", run="remaster.cli.serve:serve"),
    Command("eval", help="degrade HR images, upscale them with each candidate, score and compare "
                         "(report.md/csv/json and comparison sheets)",
            arguments="remaster.cli.evaluate:eval_arguments", run="remaster.cli.evaluate:evaluate"),
    Command("compare", help="score image A against the reference B (PSNR, SSIM, ...)",
            arguments="remaster.cli.evaluate:compare_arguments", run="remaster.cli.evaluate:compare"),
    Command("finetune", help="fine-tune a Real-ESRGAN-family model on your own images "
                             "(RUN_DIR/best.safetensors is then a --model)",
            arguments="remaster.cli.finetune:finetune_arguments", run="remaster.cli.finetune:finetune"),
)


@hookimpl
def remaster_register_commands(register: Callable[[Command], None]) -> None:
    for command in COMMANDS:
        register(command)
