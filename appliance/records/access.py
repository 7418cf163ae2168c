"""Who acts and what they may do: sign-in, the open bench, permissions, accounts.

`AccessControl` is the base of `appliance.records.service.Records`: every action of
the service first passes `require`, which consults `PERMISSIONS` and writes each
refusal to the audit trail.

A new appliance has no accounts and runs as an *open bench*: whoever uses it is
recorded under the name they give, and every action except amending is allowed,
so the first capture needs no set-up. Creating the first account (it must be an
engineer's) closes the bench: from then on every action needs a signed-in user
whose role allows it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from appliance.identifiers import normalise_operator
from appliance.records import accounts
from appliance.records.accounts import (
    AccountError,
    Action,
    Actor,
    AuthenticationFailed,
    PermissionDenied,
    Role,
    UserInfo,
)
from appliance.records.audit import append_entry
from appliance.settings import Settings
from appliance.store import Database, ImageStore

log = logging.getLogger(__name__)

#: What an open bench (no accounts yet) still refuses: an amendment must name the
#: QA lead's account that made it.
ACCOUNT_ONLY: frozenset[Action] = frozenset({Action.AMEND})


def _printable(text: str, limit: int = 100) -> str:
    """Return `text` fit for the audit trail's actor column: no control characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))[:limit]


class AccessControl:
    """Sign-in, permission checks and accounts over one data directory.

    Parameters
    ----------
    db : Database
        The open database.
    images : ImageStore
        The image store of the same data directory.
    settings : Settings
        Where the data directory (and the signing key in it) is, and the lab name.
    """

    def __init__(self, db: Database, images: ImageStore, settings: Settings) -> None:
        self.db = db
        self.images = images
        self.settings = settings

    # Who acts

    def has_accounts(self) -> bool:
        """Return whether any account exists (the bench is closed)."""
        with self.db.session() as session:
            return accounts.count_users(session) > 0

    def sign_in(self, name: str, pin: str) -> Actor:
        """Return the actor of account `name` if `pin` is right; audit the attempt.

        Raises
        ------
        AuthenticationFailed
            If the name and PIN do not match an account.
        """
        actor: Actor | None = None
        with self.db.session() as session:
            try:
                actor = accounts.authenticate(session, name, pin)
            except AuthenticationFailed:
                pass
            else:
                append_entry(
                    session, actor=actor.name, role=actor.role_name, action="login"
                )
        if actor is None:
            self._audit(Actor(_printable(name)), "login", outcome="refused")
            raise AuthenticationFailed(
                f"the name {name!r} and the PIN given do not match an account"
            )
        log.info("%s signed in as %s", actor.name, actor.role_name)
        return actor

    def open_bench(self, name: str = "bench") -> Actor:
        """Return an unregistered actor under the name given.

        Such an actor may act only while the bench has no accounts; once it has
        some, each of its actions is refused (and audited) by `require`.
        """
        return Actor(normalise_operator(name))

    def require(self, actor: Actor, action: Action, subject: str = "") -> None:
        """Check that `actor` may do `action`; audit and raise if not.

        Raises
        ------
        PermissionDenied
            If the role does not allow it, or an unregistered actor asks on a
            bench that has accounts (or asks for an account-only action).
        """
        if actor.registered:
            allowed = actor.may(action)
        else:
            allowed = action not in ACCOUNT_ONLY and not self.has_accounts()
        if allowed:
            return
        self._audit(actor, action.value, outcome="refused", subject=subject)
        log.warning(
            "refused: %s (%s) %s %s", actor.name, actor.role_name, action, subject
        )
        raise PermissionDenied(actor, action)

    def _audit(
        self,
        actor: Actor,
        action: str,
        *,
        outcome: str = "ok",
        subject: str = "",
        details: dict[str, Any] | None = None,
        session: Session | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "actor": actor.name,
            "role": actor.role_name,
            "action": action,
            "outcome": outcome,
            "subject": subject,
            "details": details,
        }
        if session is not None:
            append_entry(session, **fields)
            return
        with self.db.session() as own:
            append_entry(own, **fields)

    # Accounts

    def add_user(self, actor: Actor, name: str, role: Role, pin: str) -> UserInfo:
        """Create an account; the first one must be an engineer's.

        Raises
        ------
        PermissionDenied
            If the bench has accounts and `actor` is not an engineer.
        AccountError
            If the name or PIN is not valid, the name is taken, or the first
            account is not an engineer's.
        """
        first = not self.has_accounts()
        if first and role is not Role.ENGINEER:
            raise AccountError(
                "the first account must be an engineer's (--role engineer), who then "
                "adds the operators and QA leads"
            )
        if not first:
            self.require(actor, Action.MANAGE_USERS, f"user:{_printable(name, 40)}")
        with self.db.session() as session:
            user = accounts.create_user(session, name, role, pin)
            self._audit(
                actor,
                "user_add",
                subject=f"user:{user.name}",
                details={"role": role.value, "first_account": first},
                session=session,
            )
        return user

    def list_users(self) -> list[UserInfo]:
        """Return every account (names and roles; never PIN hashes)."""
        with self.db.session() as session:
            return accounts.list_users(session)

    def change_pin(self, actor: Actor, name: str, pin: str) -> None:
        """Set a new PIN: one's own, or anyone's for an engineer.

        Raises
        ------
        PermissionDenied
            If `actor` is neither the account's owner nor an engineer.
        UnknownUser, AccountError
            If there is no such account or the PIN is not valid.
        """
        target = accounts.normalise_username(name)
        if not (actor.registered and actor.name == target):
            self.require(actor, Action.MANAGE_USERS, f"user:{target}")
        with self.db.session() as session:
            accounts.set_pin(session, target, pin)
            self._audit(actor, "user_pin", subject=f"user:{target}", session=session)
