"""The typer application every `dualsync` command module registers on, and its global options."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="dualsync",
    help="dualsync: keep an ERP (Business Central, F&O) and a CRM (Dataverse) in step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


# This invocation's global options. The callback runs before every command and sets each one, so one
# process may run several invocations (tests do) without one seeing another's.
invocation: dict[str, str | None] = {"remote": None}


@app.callback()
def _global_options(
    remote: Annotated[str | None, typer.Option(
        "--remote", envvar="DUALSYNC_REMOTE", metavar="URL",
        help="Drive a deployed Function App through its admin API (e.g. https://<app>.azurewebsites.net; "
             "function key from DUALSYNC_ADMIN_KEY) instead of connecting from here.")] = None,
) -> None:
    """dualsync: keep an ERP (Business Central, F&O) and a CRM (Dataverse) in step."""
    invocation["remote"] = remote.strip() if remote and remote.strip() else None
