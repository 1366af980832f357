"""Key pairs (``os-keypairs``): per-user SSH public keys, validated and fingerprinted.

A key is checked the way OpenSSH reads it: ``<type> <base64 blob> [comment]``,
the blob's own type string must match, and the key material must have the shape
of its type (RSA exponent and modulus, a 32-byte Ed25519 point, an ECDSA curve
name and point). The fingerprint is Nova's: the MD5 of the blob, colon-separated.
Before microversion 2.92 a key without ``public_key`` is generated with
``ssh-keygen`` and its private half returned once, never stored.

Type ``x509`` (2.2) keys are PEM certificates (Nova's WinRM certificates): the
fingerprint is the SHA-1 of the certificate's DER bytes, colon-separated; a generated
one is a self-signed RSA 2048 certificate for the user, made with ``openssl``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import trio
from sqlmodel import Session, col, func, select

from novalite.compute.quotas import QuotaAPI
from novalite.db.engine import Database
from novalite.db.models import KeyPair
from novalite.exceptions import BadRequest, Conflict, NotFound, QuotaExceeded

KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "ssh-dss")
#: Nova's key pair names before 2.92; from 2.92 any printable character but these.
_SAFE_NAME = re.compile(r"^[a-zA-Z0-9 _-]+$")


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise ValueError("truncated")
    (length,) = struct.unpack(">I", blob[offset:offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise ValueError("truncated")
    return blob[offset + 4:end], end


def parse_public_key(text: str) -> tuple[str, bytes]:
    """(key type, blob) of an OpenSSH public key line; ValueError saying what is wrong."""
    parts = text.strip().split()
    if len(parts) < 2:
        raise ValueError("expected '<type> <base64 key> [comment]'")
    kind, body = parts[0], parts[1]
    if kind not in KEY_TYPES:
        raise ValueError(f"unsupported key type {kind!r}")
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not valid base64") from None
    inner, offset = _read_string(blob, 0)
    if inner.decode(errors="replace") != kind:
        raise ValueError(f"the key data is of type {inner.decode(errors='replace')!r}, "
                         f"not {kind!r}")
    if kind == "ssh-rsa":
        exponent, offset = _read_string(blob, offset)
        modulus, offset = _read_string(blob, offset)
        if not exponent or int.from_bytes(modulus, "big").bit_length() < 1024:
            raise ValueError("RSA keys must have a modulus of at least 1024 bits")
    elif kind == "ssh-ed25519":
        point, offset = _read_string(blob, offset)
        if len(point) != 32:
            raise ValueError("an Ed25519 key is 32 bytes")
    elif kind.startswith("ecdsa-"):
        curve, offset = _read_string(blob, offset)
        if curve.decode(errors="replace") != kind.rsplit("-", 1)[1]:
            raise ValueError("the ECDSA curve does not match the key type")
        point, offset = _read_string(blob, offset)
        if not point or point[0] != 4:
            raise ValueError("the ECDSA point is not an uncompressed point")
    else:  # ssh-dss: p, q, g, y
        for _ in range(4):
            _, offset = _read_string(blob, offset)
    if offset != len(blob):
        raise ValueError("trailing data after the key")
    return kind, blob


def fingerprint(blob: bytes) -> str:
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def generate_keypair(name: str) -> tuple[str, str]:
    """(public key line, private key PEM) made by ssh-keygen (RSA 2048, as Nova did)."""
    tool = shutil.which("ssh-keygen")
    if tool is None:
        raise BadRequest("Key pair generation needs ssh-keygen on the server; "
                         "import a public key instead (public_key).")
    with tempfile.TemporaryDirectory(prefix="novalite-key-") as tmp:
        path = Path(tmp) / "key"
        subprocess.run([tool, "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C",
                        f"Generated-by-Nova {name}", "-m", "PEM", "-f", str(path)],
                       check=True, capture_output=True)
        return path.with_suffix(".pub").read_text().strip(), path.read_text()


_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*"
                       r"-----END CERTIFICATE-----")


def _der_length(der: bytes) -> int:
    """The length of the DER SEQUENCE ``der`` holds, header included; ValueError if none."""
    if len(der) < 2 or der[0] != 0x30:
        raise ValueError("not a DER sequence")
    first = der[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(der) < 2 + count:
        raise ValueError("bad DER length")
    return 2 + count + int.from_bytes(der[2:2 + count], "big")


def parse_certificate(text: str) -> bytes:
    """The DER bytes of a PEM certificate; ValueError saying what is wrong."""
    found = _PEM_CERT.search(text)
    if found is None:
        raise ValueError("expected a PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        der = base64.b64decode("".join(found.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the certificate is not valid base64") from None
    if _der_length(der) != len(der):
        raise ValueError("the certificate is not one DER structure")
    tool = shutil.which("openssl")
    if tool is not None:
        checked = subprocess.run([tool, "x509", "-inform", "DER", "-noout"], input=der,
                                 capture_output=True)
        if checked.returncode != 0:
            raise ValueError("the certificate cannot be read")
    return der


def x509_fingerprint(der: bytes) -> str:
    digest = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def generate_x509(user_id: str) -> tuple[str, str]:
    """(certificate PEM, private key PEM): a self-signed client certificate for the user,
    RSA 2048, ten years, as Nova's WinRM certificates."""
    tool = shutil.which("openssl")
    if tool is None:
        raise BadRequest("Certificate generation needs openssl on the server; "
                         "import a certificate instead (public_key).")
    with tempfile.TemporaryDirectory(prefix="novalite-cert-") as tmp:
        key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
        subprocess.run([tool, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "3650", "-subj", f"/CN={user_id}", "-keyout", str(key), "-out",
                        str(cert), "-addext", "extendedKeyUsage=clientAuth",
                        "-addext", f"subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;"
                                   f"UTF8:{user_id}@localhost"],
                       check=True, capture_output=True)
        return cert.read_text(), key.read_text()


class KeypairAPI:
    """The key pairs of users; quota ``key_pairs`` counts per user."""

    def __init__(self, db: Database, quotas: QuotaAPI) -> None:
        self.db = db
        self.quotas = quotas
        self._lock = trio.Lock()  # count-then-insert is one step in this process

    @staticmethod
    def check_name(name: object, relaxed: bool) -> str:
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Keypair data is invalid: Keypair name must be string and "
                             "between 1 and 255 characters long")
        if not relaxed and not _SAFE_NAME.match(name):
            raise BadRequest("Keypair data is invalid: Keypair name contains unsafe "
                             "characters")
        return name

    async def create(self, user_id: str, project_id: str, name: str, public_key: str | None,
                     key_type: str = "ssh") -> tuple[KeyPair, str | None]:
        """Import ``public_key`` (or generate one): (row, private key or None)."""
        private = None
        if public_key is None:
            make = generate_x509 if key_type == "x509" else generate_keypair
            generated, private = await trio.to_thread.run_sync(
                make, user_id if key_type == "x509" else name)
            public_key = generated
        try:
            if key_type == "x509":
                der = await trio.to_thread.run_sync(parse_certificate, public_key)
                printed = x509_fingerprint(der)
            else:
                printed = fingerprint(parse_public_key(public_key)[1])
        except ValueError as exc:
            raise BadRequest(f"Keypair data is invalid: failed to generate fingerprint "
                             f"({exc})") from None
        row = KeyPair(name=name, user_id=user_id, fingerprint=printed,
                      public_key=public_key.strip() if key_type == "ssh" else public_key,
                      type=key_type)

        def work(s: Session) -> KeyPair:
            if s.exec(select(KeyPair).where(KeyPair.user_id == user_id,
                                            KeyPair.name == name)).first() is not None:
                raise Conflict(f"Key pair '{name}' already exists.")
            count = s.exec(select(func.count()).select_from(KeyPair).where(
                KeyPair.user_id == user_id)).one()
            limit = self.quotas.limits_in(s, project_id)["key_pairs"]
            if 0 <= limit <= count:
                raise QuotaExceeded("Quota exceeded, too many key pairs.")
            s.add(row)
            s.flush()
            return row

        async with self._lock:
            return await self.db.write(work), private

    async def list(self, user_id: str, limit: int | None = None,
                   marker: str | None = None) -> list[KeyPair]:
        def work(s: Session) -> list[KeyPair]:
            rows = list(s.exec(select(KeyPair).where(KeyPair.user_id == user_id)
                               .order_by(col(KeyPair.name))).all())
            if marker is not None:
                names = [r.name for r in rows]
                if marker not in names:
                    raise BadRequest(f"marker [{marker}] not found")
                rows = rows[names.index(marker) + 1:]
            return rows[:limit] if limit is not None else rows

        return await self.db.read(work)

    async def get(self, user_id: str, name: str) -> KeyPair:
        row = await self.db.read(lambda s: s.exec(select(KeyPair).where(
            KeyPair.user_id == user_id, KeyPair.name == name)).first())
        if row is None:
            raise NotFound(f"Keypair {name} not found for user {user_id}")
        return row

    async def delete(self, user_id: str, name: str) -> None:
        def work(s: Session) -> bool:
            row = s.exec(select(KeyPair).where(KeyPair.user_id == user_id,
                                               KeyPair.name == name)).first()
            if row is None:
                return False
            s.delete(row)
            return True

        if not await self.db.write(work):
            raise NotFound(f"Keypair {name} not found for user {user_id}")
