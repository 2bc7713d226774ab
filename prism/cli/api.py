"""``prism api``: serve the REST/WebSocket API (uvicorn), and manage its users and keys.

Users and keys live in the database; the creator recorded is the OS user running the command.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from prism.cli.common import console, folding_table
from prism.core.settings import load_settings

api_app = typer.Typer(
    help="The REST/WebSocket API: serve it, manage its users and keys.",
    invoke_without_command=True,
    no_args_is_help=False,
)
users_app = typer.Typer(help="API users (OAuth2 password flow).", no_args_is_help=True)
keys_app = typer.Typer(help="Long-lived API keys (exchanged for tokens).", no_args_is_help=True)
api_app.add_typer(users_app, name="users")
api_app.add_typer(keys_app, name="keys")

Role = Annotated[str, typer.Option(help="viewer, researcher, trader, approver or admin")]


def _engine():  # type: ignore[no-untyped-def]
    from prism.db.engine import open_database

    return open_database(load_settings())


@api_app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="address (default PRISM_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default PRISM_API_PORT)")] = None,
) -> None:
    """Serve the API with uvicorn (docs at /docs) on the configured database (the embedded
    one by default)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from prism.api.app import create_app
    from prism.core.settings import export_service_environment

    settings = load_settings()
    export_service_environment(settings)
    app = create_app(settings, _engine())
    uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port)


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Role = "viewer",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
) -> None:
    """Create an API user (the password is asked for, never echoed)."""
    from prism.api.accounts import add_user

    add_user(_engine(), username, password, role, getpass.getuser())
    console.print(f"[green]✓[/] API user {username} ({role})")


@users_app.command("list")
def users_list() -> None:
    """List the API users."""
    from prism.api.accounts import list_users

    table = folding_table("user", "role", "disabled", "created (UTC)")
    for user in list_users(_engine()):
        table.add_row(*(str(user[k]) for k in ("username", "role", "disabled", "created_at")))
    console.print(table)


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument(help="login name")]) -> None:
    """Disable an API user: no new login, and tokens already issued stop working in seconds."""
    from prism.api.accounts import disable_user

    disable_user(_engine(), username, getpass.getuser())
    console.print(f"[green]✓[/] API user {username} disabled")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="what the key is for")],
    role: Role = "viewer",
    days: Annotated[
        float | None, typer.Option(help="valid this many days (default: forever)")
    ] = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from prism.api.accounts import create_key

    made, expires = create_key(_engine(), name, role, getpass.getuser(), days)
    console.print(f"key id {made.key_id} ({role}), expires {expires or 'never'}")
    print(made.key)


@keys_app.command("list")
def keys_list() -> None:
    """List the API keys (never their secrets)."""
    from prism.api.accounts import list_keys

    columns = ("key_id", "name", "role", "created_by", "expires_at", "revoked_at", "last_used_at")
    table = folding_table(*columns)
    for key in list_keys(_engine()):
        table.add_row(*(str(key[c] or "") for c in columns))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id")]) -> None:
    """Revoke an API key: no new token, and tokens already issued stop working in seconds."""
    from prism.api.accounts import revoke_key

    revoke_key(_engine(), key_id, getpass.getuser())
    console.print(f"[green]✓[/] API key {key_id} revoked")
