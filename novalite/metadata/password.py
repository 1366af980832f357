"""The guest's encrypted password, as Nova keeps it (``nova/api/metadata/password.py``).

A guest agent (cloudbase-init, or cloud-init's ``set_passwords`` with an SSH key)
encrypts a password it chose with the instance's public key and POSTs it, base64, to
``/openstack/latest/password`` once; ``nova get-password`` fetches it
(``GET /servers/{id}/os-server-password``) and decrypts it with the private key.
Nova stores it in four system-metadata items of 255 characters each
(``password_0`` ... ``password_3``), so it holds at most 1,020 characters.
"""

from __future__ import annotations

from collections.abc import Mapping

CHUNKS = 4
CHUNK_LENGTH = 255
#: Longest password the guest may post (Nova's MAX_SIZE).
MAX_SIZE = CHUNKS * CHUNK_LENGTH
#: The system metadata keys it is stored under.
KEYS = tuple(f"password_{i}" for i in range(CHUNKS))


class PasswordError(Exception):
    """A guest's password post Nova refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def to_chunks(password: str) -> dict[str, str]:
    """``password`` as system metadata items (empty items clear it)."""
    return {key: password[i * CHUNK_LENGTH:(i + 1) * CHUNK_LENGTH]
            for i, key in enumerate(KEYS)}


def from_chunks(system_metadata: Mapping[str, str]) -> str:
    """The password stored in ``system_metadata`` ("" when none)."""
    return "".join(system_metadata.get(key) or "" for key in KEYS)


def check_post(current: str, body: bytes) -> str:
    """The password a guest posts, if Nova would store it: 409 when one is already
    set, 400 when the body is longer than :data:`MAX_SIZE`."""
    if current:
        raise PasswordError(409, "Password already set.")
    if len(body) > MAX_SIZE:
        raise PasswordError(400, "Request is too large.")
    return body.decode("utf-8", "replace")
