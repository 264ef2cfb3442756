"""What every command shares: consoles, and turning our errors into exit codes.

Diagnostics go to stderr, results to stdout, so ``--json`` output can be piped.
Exit codes: 0 ok, 1 failure (a model or run failed), 2 bad input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["cli_errors", "err", "out"]

# markup off: model output and answers may contain [brackets] that are not styles.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(func: F) -> F:
    """Print a :class:`ConciliumError` as one line on stderr and exit with its code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from concilium.errors import ConciliumError

        try:
            return func(*args, **kwargs)
        except ConciliumError as error:
            err.print(f"[red]error:[/red] {escape(str(error))}", markup=True, highlight=False)
            raise typer.Exit(code=error.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]
