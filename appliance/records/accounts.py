"""Roles, permissions and local accounts with scrypt-hashed PINs.

Three roles share the bench: the operator runs samples, the QA lead amends and
exports reports, the engineer calibrates the rig, installs models, changes settings
and manages the accounts. `PERMISSIONS` is the whole table; the service layer
(`appliance.records.service`) consults it before every action, so the CLI and the
app enforce the same rules.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.store.models import User

log = logging.getLogger(__name__)

_USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")

#: scrypt cost: 2**14 x 8 x 1 uses 16 MiB per hash, the interactive-login cost of
#: "Stronger Key Derivation via Sequential Memory-Hard Functions" (the scrypt
#: paper); `bench/records.py` prints what one hash takes on this machine.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32

PIN_MIN_LENGTH = 4
PIN_MAX_LENGTH = 128


class Role(StrEnum):
    """Who a user is at the bench."""

    OPERATOR = "operator"
    QA_LEAD = "qa_lead"
    ENGINEER = "engineer"


class Action(StrEnum):
    """What a user may be allowed to do."""

    CAPTURE = "capture"
    AMEND = "amend"
    EXPORT = "export"
    CALIBRATE = "calibrate"
    INSTALL_MODEL = "install_model"
    CHANGE_SETTINGS = "change_settings"
    MANAGE_USERS = "manage_users"


#: Which role may do what; anything not listed is refused.
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.OPERATOR: frozenset({Action.CAPTURE}),
    Role.QA_LEAD: frozenset({Action.AMEND, Action.EXPORT}),
    Role.ENGINEER: frozenset(
        {
            Action.CALIBRATE,
            Action.INSTALL_MODEL,
            Action.CHANGE_SETTINGS,
            Action.MANAGE_USERS,
        }
    ),
}


class AccountError(ValueError):
    """An account cannot be created or changed as asked."""


class UnknownUser(AccountError):
    """No account has the given name."""


class AuthenticationFailed(PermissionError):
    """The name and PIN given do not match an account."""


class PermissionDenied(PermissionError):
    """The acting user's role does not allow the action."""

    def __init__(self, actor: Actor, action: Action) -> None:
        allowed = sorted(r.value for r, acts in PERMISSIONS.items() if action in acts)
        if actor.registered:
            why = f"that needs the role {' or '.join(allowed)}"
        else:
            why = "this appliance has accounts: sign in with --user NAME"
        super().__init__(
            f"{actor.name} ({actor.role_name}) may not "
            f"{action.value.replace('_', ' ')}; {why}; the refusal is recorded in "
            "the audit trail"
        )
        self.actor = actor
        self.action = action


@dataclass(frozen=True)
class Actor:
    """Who is acting: an account, or a person named on an open bench.

    A bench with no accounts yet is open: whoever uses it is recorded by the name
    they give, with no role (see `appliance.records.service`).

    Attributes
    ----------
    name : str
        The account name, or the name given on an open bench.
    role : Role or None
        The account's role; None on an open bench.
    user_id : int or None
        The account's database id; None on an open bench.
    """

    name: str
    role: Role | None = None
    user_id: int | None = None

    @property
    def registered(self) -> bool:
        """Whether the actor signed in with an account."""
        return self.user_id is not None

    @property
    def role_name(self) -> str:
        """The role as recorded in the audit trail; ``"unregistered"`` for none."""
        return "unregistered" if self.role is None else self.role.value

    def may(self, action: Action) -> bool:
        """Return whether this actor's role allows `action`."""
        return self.role is not None and action in PERMISSIONS[self.role]


@dataclass(frozen=True)
class UserInfo:
    """An account as listed: never the PIN hash."""

    id: int
    name: str
    role: Role
    created_at: datetime


def normalise_username(text: str) -> str:
    """Return an account name in canonical form (NFKC, lower case).

    Raises
    ------
    AccountError
        If the name is not 2 to 32 letters, digits, ``.``, ``_`` or ``-``,
        starting with a letter.
    """
    value = unicodedata.normalize("NFKC", str(text)).strip().casefold()
    if not _USERNAME.fullmatch(value):
        raise AccountError(
            f"the account name {value!r} is not valid: use 2 to 32 lower-case letters, "
            "digits, '.', '_' or '-', starting with a letter"
        )
    return value


def parse_role(text: str) -> Role:
    """Return the role named `text`, or raise `AccountError` listing the roles."""
    try:
        return Role(str(text).strip().lower().replace("-", "_"))
    except ValueError:
        raise AccountError(
            f"unknown role {text!r}; use one of {', '.join(r.value for r in Role)}"
        ) from None


def hash_pin(pin: str) -> str:
    """Return the scrypt hash of `pin` with a fresh random salt.

    Returns
    -------
    str
        ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``.

    Raises
    ------
    AccountError
        If the PIN is shorter than `PIN_MIN_LENGTH` or longer than
        `PIN_MAX_LENGTH` characters.
    """
    if not PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH:
        raise AccountError(
            f"the PIN has {len(pin)} characters; use {PIN_MIN_LENGTH} to "
            f"{PIN_MAX_LENGTH}"
        )
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, stored: str) -> bool:
    """Return whether `pin` matches the `hash_pin` result `stored`."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        actual = _scrypt(pin, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        log.warning("an account's PIN hash is malformed; refusing the PIN")
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        unicodedata.normalize("NFKC", pin).encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * 1024 * 1024,
        dklen=_HASH_BYTES,
    )


@functools.cache
def _decoy_hash() -> str:
    return hash_pin(secrets.token_hex(8))


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.name, Role(user.role), user.created_at)


def count_users(session: Session) -> int:
    """Return the number of accounts."""
    return int(session.scalar(select(func.count(User.id))) or 0)


def find_user(session: Session, name: str) -> User | None:
    """Return the account called `name` (normalised first), or None."""
    return session.scalars(
        select(User).where(User.name == normalise_username(name))
    ).one_or_none()


def create_user(session: Session, name: str, role: Role, pin: str) -> UserInfo:
    """Add an account; the name must be new.

    Raises
    ------
    AccountError
        If the name or PIN is not valid or the name is taken.
    """
    canonical = normalise_username(name)
    if find_user(session, canonical) is not None:
        raise AccountError(f"an account called {canonical!r} exists; pick another name")
    user = User(name=canonical, role=role.value, pin_hash=hash_pin(pin))
    session.add(user)
    session.flush()
    log.info("account %s created with role %s", canonical, role.value)
    return _info(user)


def set_pin(session: Session, name: str, pin: str) -> None:
    """Replace the PIN of account `name`.

    Raises
    ------
    UnknownUser
        If there is no such account.
    AccountError
        If the PIN is not valid.
    """
    user = find_user(session, name)
    if user is None:
        raise UnknownUser(f"no account called {name!r}; `seedqa users list` names them")
    user.pin_hash = hash_pin(pin)
    log.info("PIN of account %s changed", user.name)


def list_users(session: Session) -> list[UserInfo]:
    """Return every account, by name."""
    return [_info(u) for u in session.scalars(select(User).order_by(User.name))]


def authenticate(session: Session, name: str, pin: str) -> Actor:
    """Return the actor of account `name` if `pin` is its PIN.

    Raises
    ------
    AuthenticationFailed
        If there is no such account or the PIN is wrong; the message does not say
        which, so it does not reveal which names exist.
    """
    try:
        user = find_user(session, name)
    except AccountError:
        user = None
    # An unknown name costs one scrypt too, so timing does not tell names apart.
    stored = _decoy_hash() if user is None else user.pin_hash
    if not check_pin(pin, stored) or user is None:
        raise AuthenticationFailed(
            f"the name {name!r} and the PIN given do not match an account; check both"
        )
    return Actor(user.name, Role(user.role), user.id)
