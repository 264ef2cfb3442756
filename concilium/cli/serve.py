"""``concilium serve``: the teams of a directory as a service (OpenAI-compatible API,
runs API, web viewer). Needs the ``serve`` extra."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from concilium.cli.common import cli_errors, err


@cli_errors
def serve_command(
    teams: Annotated[Path, typer.Option(help="A directory of team files (or one file); "
                                        "each team is a model.")] = Path("examples/teams"),
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback "
                                      "needs an API key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8400,
    api_key: Annotated[str | None, typer.Option(
        envvar="CONCILIUM_API_KEY", show_envvar=True, show_default=False,
        help="Require 'Authorization: Bearer KEY' on every endpoint but /health.")] = None,
    max_body: Annotated[int, typer.Option(min=1024, help="Largest request body (bytes).")
                        ] = 1 << 20,
    reports: Annotated[Path | None, typer.Option(
        help="Evaluation reports to show in the viewer (concilium eval --out dirs) "
        "[default: reports/ if it exists].", show_default=False)] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "warning",
) -> None:
    """Serve teams: /v1 (OpenAI-compatible: a team is a model), /runs, and a viewer at /."""
    from concilium.errors import ConfigError, MissingDependencyError

    try:
        import uvicorn

        from concilium.serve import ServeConfig, create_app, is_loopback
    except ImportError as missing:
        raise MissingDependencyError(
            f"concilium serve needs the serve extra ({missing.name} is missing): "
            "pip install -e '.[serve]'") from None
    if not api_key and not is_loopback(host):
        raise ConfigError(f"refusing to listen on {host} without an API key: set "
                          "CONCILIUM_API_KEY (or --api-key), or listen on 127.0.0.1")
    if api_key:  # a secret of this process: masked in every event, page and error
        os.environ["CONCILIUM_API_KEY"] = api_key
    if reports is None:
        reports = Path("reports") if Path("reports").is_dir() else None
    elif not reports.is_dir():
        raise ConfigError(f"--reports {reports}: no such directory")
    app = create_app(ServeConfig(teams=teams, api_key=api_key, max_body_bytes=max_body,
                                 reports=reports))
    where = f"http://{host}:{port}"
    err.print(f"concilium serve: {len(app.state.registry.names())} teams on {where} "
              f"(OpenAI base_url {where}/v1; viewer {where}/)"
              + ("" if api_key else "; no API key: loopback only"))
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
