"""The typer application every `dualsync` command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dualsync",
    help="dualsync: keep an ERP (Business Central, F&O) and a CRM (Dataverse) in step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
