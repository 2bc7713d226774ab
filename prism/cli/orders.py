"""``prism orders``: the orders the runner has placed, newest first, with the client order ids
``prism lineage`` takes."""

from __future__ import annotations

from typing import Annotated

import typer

from prism.cli.common import console, folding_table, plain_value, strict_json
from prism.core.settings import load_settings
from prism.ledger.order_states import STATES as STATUSES

orders_app = typer.Typer(help="Orders the runner has placed.", no_args_is_help=True)


def check_statuses(values: list[str] | None) -> list[str]:
    """Return the ``--status`` values, each checked against :data:`STATUSES`."""
    chosen = [v.strip().lower() for value in values or [] for v in value.split(",") if v.strip()]
    for value in chosen:
        if value not in STATUSES:
            raise typer.BadParameter(
                f"{value!r} is not an order status; allowed: {', '.join(STATUSES)}",
                param_hint="--status",
            )
    return chosen


def _quantity(value: object) -> str:
    return f"{value:f}".rstrip("0").rstrip(".")


def _price(value: object) -> str:
    number = plain_value(value)
    return "" if number is None else f"{number:,.4f}"


@orders_app.command("list")
def orders_list(
    deployment: Annotated[
        list[str] | None, typer.Option(help="only this deployment (repeatable)")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(help=f"only these statuses ({', '.join(STATUSES)}; repeatable or a,b)"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="newest orders to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON array")] = False,
) -> None:
    """List orders, newest first: time, deployment, symbol, side, quantity, status, fill and
    the client order id (for `prism lineage`)."""
    from prism.db.engine import open_database
    from prism.monitoring.orders import OrderFilter, orders

    where = OrderFilter(
        statuses=tuple(check_statuses(status)),
        deployments=tuple(deployment or ()),
        limit=limit,
    )
    frame = orders(open_database(load_settings()), where)
    if as_json:
        print(strict_json(frame.to_dict("records")))
        return
    table = folding_table(
        "decided (UTC)",
        "deployment",
        "symbol",
        "side",
        "quantity",
        "status",
        "filled",
        "avg price",
        "client order id",
        whole="client order id",
    )
    for row in frame.to_dict("records"):
        table.add_row(
            f"{row['decided_at']:%Y-%m-%d %H:%M:%S}",
            str(row["deployment"]),
            str(row["symbol"]),
            str(row["side"]),
            _quantity(row["quantity"]),
            str(row["status"]),
            _quantity(row["filled_quantity"]),
            _price(row["average_fill_price"]),
            str(row["client_order_id"]),
        )
    console.print(table)
    if frame.empty:
        console.print("no orders match")
