"""The `backchannel` command: serve, migrate, check-config, version, apikey, ledger, user,
account, media gc, push test."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from backchannel import __version__
from backchannel.server.settings import Settings, describe_validation_error, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backchannel", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server (the default)")
    serve.add_argument("--host", help="interface to listen on (BACKCHANNEL_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (BACKCHANNEL_PORT)")
    commands.add_parser("migrate", help="apply pending database migrations")
    commands.add_parser("check-config", help="print the effective settings, secrets redacted")
    commands.add_parser("version", help="print the version")
    apikey = commands.add_parser("apikey", help="manage server API keys (POST /publish)")
    actions = apikey.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key and print it once")
    create.add_argument("name")
    actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke the live key with this name")
    revoke.add_argument("name")
    ledger = commands.add_parser("ledger", help="reconcile the money tables")
    ledger_actions = ledger.add_subparsers(dest="action", required=True)
    ledger_actions.add_parser(
        "check", help="verify the ledger from the database alone; exit 1 on any discrepancy"
    )
    user = commands.add_parser("user", help="manage users' roles")
    user_actions = user.add_subparsers(dest="action", required=True)
    for verb, text in (("grant", "give EMAIL the role ROLE"), ("revoke", "take ROLE back (fan)")):
        role_command = user_actions.add_parser(verb, help=text)
        role_command.add_argument("email")
        role_command.add_argument("role", choices=["fan", "creator", "moderator", "admin"])
    account = commands.add_parser("account", help="operator actions on accounts")
    account_actions = account.add_subparsers(dest="action", required=True)
    erase = account_actions.add_parser("erase", help="erase the account of EMAIL now")
    erase.add_argument("email")
    media = commands.add_parser("media", help="media storage maintenance")
    media_actions = media.add_subparsers(dest="action", required=True)
    gc = media_actions.add_parser(
        "gc", help="remove abandoned uploads and stored objects no media row owns"
    )
    gc.add_argument(
        "--grace-seconds",
        type=float,
        default=3600.0,
        help="leave objects younger than this (an upload may be arriving); default 3600",
    )
    push = commands.add_parser("push", help="push notifications")
    push_actions = push.add_subparsers(dest="action", required=True)
    push_test = push_actions.add_parser(
        "test", help="send a test push to every device of USER_ID; print each provider's answer"
    )
    push_test.add_argument("user_id")
    outbox = commands.add_parser("outbox", help="inspect the outbox of live events")
    outbox_actions = outbox.add_subparsers(dest="action", required=True)
    outbox_list = outbox_actions.add_parser(
        "list", help="list outbox rows given up on after BACKCHANNEL_OUTBOX_MAX_ATTEMPTS"
    )
    outbox_list.add_argument(
        "--dead", action="store_true", required=True, help="the dead-lettered rows (required)"
    )
    outbox_list.add_argument("--limit", type=int, default=100, help="newest first; default 100")
    return parser


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        print(f"backchannel: {describe_validation_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


def _run_serve(args: argparse.Namespace) -> int:
    from backchannel.server.serve import serve

    settings = _settings(host=args.host, port=args.port)
    return serve(settings)


def _run_migrate(args: argparse.Namespace) -> int:
    from backchannel.server.serve import run_migrations

    return run_migrations(_settings())


def _run_check_config(args: argparse.Namespace) -> int:
    settings = _settings()
    print(json.dumps(settings.redacted(), indent=2, sort_keys=True))
    return 0


def _run_version(args: argparse.Namespace) -> int:
    print(__version__)
    return 0


def _run_apikey(args: argparse.Namespace) -> int:
    from backchannel.server.operator_commands import run_apikey

    return run_apikey(_settings(), args.action, getattr(args, "name", None))


def _run_ledger(args: argparse.Namespace) -> int:
    from backchannel.server.operator_commands import run_ledger_check

    return run_ledger_check(_settings())


def _run_user(args: argparse.Namespace) -> int:
    from backchannel.server.operator_commands import run_user_role

    return run_user_role(_settings(), args.action, args.email, args.role)


def _run_account(args: argparse.Namespace) -> int:
    from backchannel.server.operator_commands import run_account_erase

    return run_account_erase(_settings(), args.email)


def _run_media(args: argparse.Namespace) -> int:
    from backchannel.server.operator_commands import run_media_gc

    return run_media_gc(_settings(), args.grace_seconds)


def _run_push(args: argparse.Namespace) -> int:
    from backchannel.server.operator_commands import run_push_test

    return run_push_test(_settings(), args.user_id)


def _run_outbox(args: argparse.Namespace) -> int:
    from backchannel.server.operator_commands import run_outbox_list_dead

    return run_outbox_list_dead(_settings(), args.limit)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _run_serve,
    "migrate": _run_migrate,
    "check-config": _run_check_config,
    "version": _run_version,
    "apikey": _run_apikey,
    "ledger": _run_ledger,
    "user": _run_user,
    "account": _run_account,
    "media": _run_media,
    "push": _run_push,
    "outbox": _run_outbox,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `backchannel` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if command == "serve" and args.command is None:
        args.host, args.port = None, None
    try:
        return COMMANDS[command](args)
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:
        return 1
