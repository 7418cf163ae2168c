"""A content-addressed store of image files, named by the SHA-256 of their bytes.

A file is written to a temporary name beside its final one, flushed and fsynced,
renamed into place and its directory fsynced, so a database row that names an image
never outlives a crash that lost the image.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from appliance.files import fsync_directory, write_atomic

log = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,10}")
_CHUNK_BYTES = 1 << 20


class ImageNotFound(FileNotFoundError):
    """No file with the requested hash is in the store."""


class ImageEncodeError(RuntimeError):
    """OpenCV could not encode an image as PNG."""


def check_sha256(sha: str) -> str:
    """Return `sha` if it is 64 lowercase hexadecimal digits, else raise ValueError.

    Parameters
    ----------
    sha : str
        A SHA-256 digest as hex text.

    Returns
    -------
    str
        The same text, now safe to build a path from.

    Raises
    ------
    ValueError
        If `sha` is anything else (upper case, short, a path, ...).
    """
    if not isinstance(sha, str) or _SHA256_HEX.fullmatch(sha) is None:
        raise ValueError(
            f"expected a SHA-256 digest as 64 lowercase hex digits, got {sha!r}"
        )
    return sha


def _check_suffix(suffix: str) -> str:
    if not isinstance(suffix, str) or _SUFFIX.fullmatch(suffix) is None:
        raise ValueError(
            f"expected a file suffix such as '.png' (a dot and up to 10 lowercase "
            f"letters or digits), got {suffix!r}"
        )
    return suffix


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def encode_png(image: NDArray[np.uint8] | NDArray[np.uint16]) -> bytes:
    """Encode an image losslessly as PNG.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray or (H, W) uint8 or uint16 ndarray
        RGB pixels, or a single-channel image such as a 16-bit label image.

    Returns
    -------
    bytes
        The PNG file's bytes.

    Raises
    ------
    ValueError
        If the array has another shape or dtype.
    ImageEncodeError
        If OpenCV fails to encode it.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(image).__name__}")
    is_rgb8 = image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    is_gray = image.ndim == 2 and image.dtype in (np.uint8, np.uint16)
    if not (is_rgb8 or is_gray) or image.size == 0:
        raise ValueError(
            "expected an (H, W, 3) uint8 RGB array or an (H, W) uint8/uint16 array, "
            f"got shape {image.shape} and dtype {image.dtype}"
        )

    # OpenCV writes the channels in BGR order.
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if is_rgb8 else image
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise ImageEncodeError(f"OpenCV could not encode a {image.shape} image as PNG")
    return buffer.tobytes()


def decode_png(data: bytes) -> NDArray[np.uint8] | NDArray[np.uint16]:
    """Decode PNG bytes written by `encode_png`.

    Parameters
    ----------
    data : bytes
        A PNG file's bytes.

    Returns
    -------
    (H, W, 3) uint8 ndarray or (H, W) uint8 or uint16 ndarray
        RGB pixels, or the single channel as stored.
    """
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError(f"could not decode {len(data)} bytes as an image")
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return cast("NDArray[np.uint8] | NDArray[np.uint16]", np.asarray(pixels))


class ImageStore:
    """Image files under `root`, each named by the SHA-256 of its bytes.

    The file of digest ``abcd...`` with suffix ``.png`` lies at
    ``root/ab/cd/abcd....png``; two levels of fan-out keep directories small.

    Parameters
    ----------
    root : Path
        The store's directory; created on the first `put`.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self._root

    def path(self, sha: str, suffix: str = ".png") -> Path:
        """Return where the file of digest `sha` lies (whether or not it exists).

        Parameters
        ----------
        sha : str
            SHA-256 digest, 64 lowercase hex digits.
        suffix : str
            File suffix, such as ``".png"``.

        Returns
        -------
        Path
            ``root/<sha[0:2]>/<sha[2:4]>/<sha><suffix>``.

        Raises
        ------
        ValueError
            If `sha` or `suffix` is malformed.
        """
        check_sha256(sha)
        _check_suffix(suffix)
        return self._root / sha[:2] / sha[2:4] / f"{sha}{suffix}"

    def put(self, data: bytes, *, suffix: str = ".png") -> str:
        """Store `data` durably and return its SHA-256 digest.

        When a file with that digest is already stored intact, nothing is written.

        Parameters
        ----------
        data : bytes
            The file's contents.
        suffix : str
            File suffix, such as ``".png"``.

        Returns
        -------
        str
            The SHA-256 digest of `data`, 64 lowercase hex digits.
        """
        sha = hashlib.sha256(data).hexdigest()
        final = self.path(sha, suffix)
        if final.is_file():
            if _sha256_of_file(final) == sha:
                log.debug("image %s already stored", final.name)
                return sha
            log.warning("stored image %s does not match its name; rewriting it", final)

        created = self._make_directories(final.parent)
        write_atomic(final, data, sync_directory=False)
        for directory in created:
            fsync_directory(directory)
        log.debug("stored image %s (%d bytes)", final.name, len(data))
        return sha

    def put_image(
        self, image: NDArray[np.uint8] | NDArray[np.uint16], *, suffix: str = ".png"
    ) -> str:
        """Encode `image` as a lossless PNG, store it and return its digest.

        Parameters
        ----------
        image : (H, W, 3) uint8 ndarray or (H, W) uint8 or uint16 ndarray
            RGB pixels (not BGR), or a single-channel image such as a label image.
        suffix : str
            File suffix; only ``".png"`` matches the encoding.

        Returns
        -------
        str
            The SHA-256 digest of the PNG file.
        """
        if suffix != ".png":
            raise NotImplementedError(
                f"put_image writes PNG files only, got suffix {suffix!r}"
            )
        return self.put(encode_png(image), suffix=suffix)

    def read(self, sha: str, suffix: str = ".png") -> bytes:
        """Return the bytes of the file of digest `sha`.

        Raises
        ------
        ImageNotFound
            If no such file is stored.
        """
        path = self.path(sha, suffix)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ImageNotFound(
                f"image {sha}{suffix} is not in the image store at {self._root}"
            ) from None

    def read_image(
        self, sha: str, suffix: str = ".png"
    ) -> NDArray[np.uint8] | NDArray[np.uint16]:
        """Return the pixels of the PNG of digest `sha` (RGB for colour images)."""
        return decode_png(self.read(sha, suffix))

    def verify(self, sha: str, suffix: str = ".png") -> bool:
        """Return whether the file of digest `sha` exists and still hashes to `sha`."""
        path = self.path(sha, suffix)
        try:
            return _sha256_of_file(path) == sha
        except FileNotFoundError:
            return False

    def _make_directories(self, directory: Path) -> list[Path]:
        """Create `directory` and its parents; return those to fsync, deepest first.

        The final directory is always fsynced (for the new file's name); each
        directory created here also needs its parent fsynced (for its own name).
        """
        missing = []
        for candidate in (directory, *directory.parents):
            if candidate.exists():
                break
            missing.append(candidate)
        directory.mkdir(parents=True, exist_ok=True)
        return [directory, *(created.parent for created in missing)]
