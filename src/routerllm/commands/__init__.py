"""CLI commands, one module per area. Each module defines `register(app: typer.Typer)` and keeps
heavy imports inside the command functions so that `routerllm --help` stays fast."""

COMMAND_MODULES = [
    "routerllm.commands.plan",
    "routerllm.commands.validate",
    "routerllm.commands.benchmark",
    "routerllm.commands.compare",
    "routerllm.commands.serve",
]
