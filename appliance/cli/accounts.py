"""`seedqa` commands for accounts and the audit trail: users, audit."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from appliance.cli.common import (
    UsageError,
    acting_user,
    open_records,
    read_pin,
    user_argument,
)
from appliance.records.accounts import Role, parse_role
from appliance.records.audit import list_entries
from appliance.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `seedqa` parser."""
    p = sub.add_parser(
        "users",
        help="local accounts: add, list, passwd",
        description="Accounts of the people at the bench. Roles: operator (runs "
        "samples), qa_lead (amends and exports reports), engineer (calibration, "
        "models, settings, accounts). On a new appliance the first account must be "
        "an engineer's; creating it closes the open bench.",
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="ACTION")
    a = verbs.add_parser(
        "add",
        help="add an account (engineer; anyone for the first)",
        description="Add an account. Its PIN is read from $SEEDQA_NEW_PIN or asked "
        "for twice; the acting engineer's own PIN from $SEEDQA_PIN.",
    )
    a.add_argument("name", help="account name: 2-32 letters, digits, '.', '_', '-'")
    a.add_argument(
        "--role", required=True, type=parse_role, help="operator, qa_lead or engineer"
    )
    user_argument(a)
    a.set_defaults(run=cmd_add)

    p_list = verbs.add_parser("list", help="list the accounts and their roles")
    p_list.add_argument("--json", action="store_true", help="print as JSON")
    p_list.set_defaults(run=cmd_list)

    w = verbs.add_parser(
        "passwd",
        help="set a new PIN (one's own, or anyone's as an engineer)",
        description="Set the PIN of account NAME, read from $SEEDQA_NEW_PIN or "
        "asked for twice. Sign in with --user (default: NAME itself).",
    )
    w.add_argument("name", help="the account whose PIN changes")
    user_argument(w)
    w.set_defaults(run=cmd_passwd)

    p = sub.add_parser(
        "audit",
        help="the tamper-evident audit trail: verify, list",
        description="Every capture, amendment, export, login, calibration and "
        "model change, refused or done, is one row chained by SHA-256.",
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="ACTION")
    v = verbs.add_parser(
        "verify",
        help="check the chain and every stored sample; exit 1 naming the first "
        "row that does not fit",
    )
    v.add_argument("--json", action="store_true", help="print the findings as JSON")
    v.add_argument(
        "--manifest",
        type=Path,
        action="append",
        default=[],
        help="signed export (manifest.json or its folder) whose recorded audit head "
        "must still be in the trail; repeatable",
    )
    v.set_defaults(run=cmd_verify)
    show = verbs.add_parser("list", help="print the audit rows, oldest first")
    show.add_argument("--subject", help="only rows about this, e.g. sample:12")
    show.add_argument("--last", type=int, help="only the last N rows")
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.set_defaults(run=cmd_list_audit)


def _new_pin() -> str:
    pin = read_pin("new PIN: ", variable="SEEDQA_NEW_PIN")
    typed = "SEEDQA_NEW_PIN" not in os.environ
    if typed and read_pin("new PIN again: ", variable="SEEDQA_NEW_PIN") != pin:
        raise UsageError("the two PINs differ; nothing was changed")
    return pin


def cmd_add(args: argparse.Namespace) -> int:
    """Add an account."""
    records = open_records(Settings.load())
    try:
        actor = acting_user(records, args)
        user = records.add_user(actor, args.name, args.role, _new_pin())
    finally:
        records.db.close()
    print(f"account {user.name} added as {user.role.value}")
    if user.role is Role.ENGINEER and actor.name == "bench":
        print("the appliance now has accounts: commands need --user NAME from now on")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List the accounts."""
    records = open_records(Settings.load())
    try:
        users = records.list_users()
    finally:
        records.db.close()
    if args.json:
        rows = [
            {
                "name": u.name,
                "role": u.role.value,
                "created_at": u.created_at.isoformat(),
            }
            for u in users
        ]
        print(json.dumps(rows, indent=1))
        return 0
    if not users:
        print("no accounts: the bench is open (seedqa users add NAME --role engineer)")
    for user in users:
        print(f"{user.name:<32} {user.role.value:<9} since {user.created_at:%Y-%m-%d}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    """Set a new PIN."""
    records = open_records(Settings.load())
    try:
        args.user = args.user or args.name
        actor = acting_user(records, args)
        records.change_pin(actor, args.name, _new_pin())
    finally:
        records.db.close()
    print(f"PIN of {args.name} changed")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify the audit trail."""
    records = open_records(Settings.load())
    try:
        report = records.verify_audit(manifests=args.manifest)
    finally:
        records.db.close()
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "rows": report.rows,
                    "samples": report.samples,
                    "head": None
                    if report.head is None
                    else {"row": report.head[0], "row_hash": report.head[1]},
                    "problems": [
                        {"row": p.row, "what": p.what} for p in report.problems
                    ],
                },
                indent=1,
            )
        )
        return 0 if report.ok else 1
    if report.ok:
        head = "" if report.head is None else f", head row {report.head[0]}"
        print(
            f"audit trail intact: {report.rows} rows, {report.samples} samples match"
            f"{head}"
        )
        return 0
    first = report.problems[0]
    where = f"row {first.row}" if first.row is not None else "stored data"
    print(f"AUDIT TRAIL BROKEN at {where}: {first.what}")
    for problem in report.problems[1:]:
        where = f"row {problem.row}" if problem.row is not None else "stored data"
        print(f"  also {where}: {problem.what}")
    return 1


def cmd_list_audit(args: argparse.Namespace) -> int:
    """Print audit rows."""
    records = open_records(Settings.load())
    try:
        rows = list_entries(records.db, subject=args.subject, limit=args.last)
    finally:
        records.db.close()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=1, ensure_ascii=False))
        return 0
    for r in rows:
        print(
            f"{r.id:>5} {r.recorded_at[:19]} {r.outcome:<7} {r.action:<13} "
            f"{r.subject:<20} {r.actor} ({r.role})"
        )
    return 0
