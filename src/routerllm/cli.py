"""The `routerllm` command line (typer). Each area registers its commands from
`routerllm.commands.<area>`; the scripts in scripts/ are thin wrappers over these commands."""

from __future__ import annotations

import importlib
import sys

import typer

from routerllm.commands import COMMAND_MODULES

app = typer.Typer(
    name="routerllm",
    help="Plan, load, benchmark and route between very large and small language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """Plan, load, benchmark and route between very large and small language models."""


for _module in COMMAND_MODULES:
    try:
        importlib.import_module(_module).register(app)
    except ModuleNotFoundError as exc:  # an area not yet present in this checkout
        if exc.name != _module:
            raise


@app.command("config")
def check_config(
    config: str = typer.Option(..., "--config", "-c", help="YAML config to validate"),
) -> None:
    """Validate a config file and print it with every default filled in."""
    import json

    from routerllm.config import load_config

    cfg = load_config(config)
    typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
    typer.secho(f"{config}: valid", fg=typer.colors.GREEN, err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point; `argv` lets the scripts in scripts/ call a subcommand."""
    from routerllm.exceptions import RouterLLMError

    try:
        app(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)
    except RouterLLMError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
