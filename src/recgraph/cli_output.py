"""Console output shared by the command-line modules: one console and one way to stop with an error."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console()


def fail(msg: str) -> NoReturn:
    """Print ``error: msg`` as one logical line (rich inserts no breaks, so paths stay whole) and exit 2."""
    console.print(f"[bold red]error:[/] {msg}", soft_wrap=True)
    raise typer.Exit(2)
