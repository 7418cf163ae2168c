"""The appliance's Ed25519 key and the signed manifests of exported reports.

An export is a folder of report files and one ``manifest.json`` listing each
file's SHA-256 and size, the samples and report versions it covers, and the head
of the audit trail at export time. The manifest is signed with the appliance's
private key, kept in the data directory (file mode 0600) and made on first use.
Anyone with the appliance's public key (`seedqa report key`) can check that a file
is genuine and unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from appliance.files import fsync_directory, write_atomic
from appliance.records.audit import canonical_json

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "seedqa-export-manifest"
MANIFEST_VERSION = 1

#: Where the key lives, relative to the data directory.
KEY_RELATIVE_PATH = Path("keys") / "appliance-ed25519.pem"


class SignatureError(ValueError):
    """A key or manifest cannot be read, or a file cannot be checked."""


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """Return ``sha256:<hex>`` of the raw public key: the key's name on reports."""
    return "sha256:" + hashlib.sha256(_raw_public(key)).hexdigest()


@dataclass(frozen=True)
class ApplianceKey:
    """The appliance's signing key."""

    private: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> Ed25519PublicKey:
        """The public half, to give to whoever checks the reports."""
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the public key."""
        return fingerprint(self.public)

    def public_pem(self) -> str:
        """Return the public key as PEM text (SubjectPublicKeyInfo)."""
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


def key_path(data_dir: Path) -> Path:
    """Return where the appliance key is kept under `data_dir`."""
    return Path(data_dir) / KEY_RELATIVE_PATH


def load_or_create_key(data_dir: Path) -> ApplianceKey:
    """Return the appliance key, creating it (mode 0600) if there is none.

    Raises
    ------
    SignatureError
        If the key file exists but cannot be read as an Ed25519 private key.
    """
    path = key_path(data_dir)
    if not path.exists():
        _create_key(path)
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SignatureError(
            f"cannot read the appliance key {path}: {exc}; restore it from backup"
        ) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise SignatureError(f"{path} holds a {type(private).__name__}, not Ed25519")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("appliance key %s is readable by others (mode %o)", path, mode)
    return ApplianceKey(private, path)


def _create_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        # link() fails if another process made the key meanwhile; theirs is kept.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)
    log.info("appliance signing key created at %s", path)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key (PEM) from `path`.

    Raises
    ------
    SignatureError
        If the file cannot be read or holds another kind of key.
    """
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SignatureError(f"cannot read the public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path} holds a {type(key).__name__}, not Ed25519")
    return key


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(
    directory: Path,
    names: Sequence[str],
    key: ApplianceKey,
    *,
    samples: Sequence[Mapping[str, Any]],
    audit_head: tuple[int, str] | None,
) -> Path:
    """Sign the files `names` in `directory` and write ``manifest.json`` beside them.

    Returns
    -------
    Path
        The manifest's path.
    """
    files = [
        {
            "name": name,
            "sha256": file_sha256(directory / name),
            "bytes": (directory / name).stat().st_size,
        }
        for name in names
    ]
    body = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "appliance_key": {
            "algorithm": "Ed25519",
            "public_key": base64.b64encode(_raw_public(key.public)).decode("ascii"),
            "fingerprint": key.fingerprint,
        },
        "files": files,
        "samples": [dict(s) for s in samples],
        "audit_head": None
        if audit_head is None
        else {"row": audit_head[0], "row_hash": audit_head[1]},
    }
    signature = key.private.sign(canonical_json(body).encode("utf-8"))
    document = {"manifest": body, "signature": base64.b64encode(signature).decode()}
    path = directory / MANIFEST_NAME
    write_atomic(path, (json.dumps(document, indent=1) + "\n").encode("utf-8"))
    log.info("manifest of %d files signed by %s: %s", len(files), key.fingerprint, path)
    return path


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify_export`.

    Attributes
    ----------
    manifest : Path
        The manifest that was checked.
    signer : str or None
        Fingerprint of the key the manifest names.
    checked : tuple of str
        Files whose hash was compared.
    problems : tuple of str
        What differs; empty when every checked file is genuine and unchanged.
    """

    manifest: Path
    signer: str | None
    checked: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether the signature holds and every checked file is unchanged."""
        return not self.problems


def find_manifest(path: Path) -> Path:
    """Return the manifest that covers `path` (a file, a manifest, or a folder)."""
    path = Path(path)
    if path.is_dir():
        return path / MANIFEST_NAME
    if path.name == MANIFEST_NAME:
        return path
    return path.parent / MANIFEST_NAME


def verify_export(path: Path, trusted: Ed25519PublicKey) -> Verification:
    """Check that `path` is genuine and unchanged.

    Parameters
    ----------
    path : Path
        One exported file (only it is checked), its folder or its manifest (every
        file listed is checked).
    trusted : Ed25519PublicKey
        The appliance's public key; a manifest signed by any other key fails.

    Returns
    -------
    Verification
        `problems` names each thing that differs.

    Raises
    ------
    SignatureError
        If `path` does not exist or there is no manifest beside it.
    """
    path = Path(path)
    if not path.exists():
        raise SignatureError(f"{path} does not exist; give an exported file or folder")
    manifest_path = find_manifest(path)
    body, signature = _read_manifest(manifest_path)

    problems = []
    key_info = body.get("appliance_key") or {}
    signer = key_info.get("fingerprint")
    if key_info.get("public_key") != base64.b64encode(_raw_public(trusted)).decode():
        problems.append(
            f"the manifest is signed by key {signer}, not by this appliance's key "
            f"{fingerprint(trusted)}"
        )
    try:
        trusted.verify(signature, canonical_json(body).encode("utf-8"))
    except InvalidSignature:
        problems.append(
            f"the signature of {manifest_path.name} does not match its contents: the "
            "manifest was changed or was not signed by this appliance"
        )

    listed = {str(f.get("name")): f for f in body.get("files", [])}
    if path.is_dir() or path == manifest_path:
        names = list(listed)
    elif path.name in listed:
        names = [path.name]
    else:
        names = []
        problems.append(f"{path.name} is not listed in {manifest_path}")
    for name in names:
        problem = _check_file(manifest_path.parent, name, listed[name])
        if problem is not None:
            problems.append(problem)
    if path.is_dir() or path == manifest_path:
        extra = sorted(
            p.name
            for p in manifest_path.parent.iterdir()
            if p.name not in listed and p.name != MANIFEST_NAME
        )
        problems += [
            f"{name} is in the folder but not in the manifest" for name in extra
        ]

    return Verification(manifest_path, signer, tuple(names), tuple(problems))


def _read_manifest(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        body = document["manifest"]
        signature = base64.b64decode(document["signature"], validate=True)
    except FileNotFoundError:
        raise SignatureError(
            f"no {MANIFEST_NAME} beside {path.parent}; a signed export keeps its "
            "manifest in the same folder as its files"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(
            f"{path} is not a readable export manifest ({exc}); it may be damaged"
        ) from exc
    if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
        raise SignatureError(f"{path} is not a seedqa export manifest")
    return body, signature


def read_manifest(path: Path) -> dict[str, Any]:
    """Return the body of the manifest at `path`, unchecked (see `verify_export`).

    Raises
    ------
    SignatureError
        If it is missing or not a seedqa export manifest.
    """
    return _read_manifest(Path(path))[0]


def _check_file(directory: Path, name: str, entry: Mapping[str, Any]) -> str | None:
    # A manifest names plain files beside it; anything else is not followed.
    if Path(name).name != name or name in ("", ".", ".."):
        return f"the manifest names {name!r}, which is not a file beside it"
    path = directory / name
    if not path.is_file():
        return f"{name} is missing"
    actual = file_sha256(path)
    if actual != entry.get("sha256"):
        return (
            f"{name} has changed: SHA-256 {actual[:16]}... instead of the signed "
            f"{str(entry.get('sha256'))[:16]}..."
        )
    return None
