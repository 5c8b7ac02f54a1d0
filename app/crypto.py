"""Personal data at rest (PIPL; OWASP ASVS V6.1/V8.3): residents' names and phone numbers, and the
representatives' phone numbers, are stored encrypted, and found through a keyed hash.

- Encryption: Fernet (AES-128-CBC + HMAC-SHA256) with the keys of ``MINYI_PERSONAL_DATA_KEYS`` (comma
  separated, the first encrypts, every one decrypts), or, when unset, one key derived from
  ``MINYI_SECRET_KEY``. A stored value reads ``pd1:<token>``; a value without the prefix is plain text
  from before encryption (read as it is, encrypted by ``minyi rotate-keys``).
- Rotation: put a new key first, keep the old ones after it, run ``minyi rotate-keys`` (every value is
  re-encrypted with the new key, in batches), then drop the old keys.
- Look-up: ``blind_index`` is an HMAC-SHA256 of the normalised value under a key derived from the secret
  key, so the office can find one resident's forms by phone number without any phone number being
  readable in the database.

The column type ``PersonalText`` does the encryption for every ORM and Core statement. Its key ring is
process-wide (a column type cannot see the app's settings); ``configure`` is called by ``create_app`` and
the commands. Keys configured earlier in the process stay usable for decryption.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from app.config import Settings

PREFIX = "pd1:"


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret.encode())


def derived_key(secret_key: str) -> str:
    """The Fernet key used when MINYI_PERSONAL_DATA_KEYS is unset."""
    return base64.urlsafe_b64encode(_derive(secret_key, b"minyi personal data v1")).decode()


class KeyRing:
    def __init__(self) -> None:
        self._current: Fernet | None = None
        self._all: list[Fernet] = []
        self._known: set[str] = set()
        self._index_key = b""

    def configure(self, settings: Settings) -> None:
        keys = settings.personal_data_key_list or [derived_key(settings.secret_key)]
        fernets = [Fernet(k) for k in keys]
        self._current = fernets[0]
        # This configuration's keys first, then any configured before in this process (several apps in one
        # process, as in tests, each read what the others wrote).
        self._all = [*fernets, *(f for f in self._all if f not in fernets)]
        for key in keys:
            self._known.add(key)
        self._index_key = _derive(settings.secret_key, b"minyi blind index v1")

    @property
    def ready(self) -> bool:
        return self._current is not None

    def _ensure(self) -> None:
        if self._current is None:  # a script or test using the models before any app: the environment's settings
            from app.config import get_settings

            self.configure(get_settings())

    def encrypt(self, value: str) -> str:
        self._ensure()
        assert self._current is not None
        return PREFIX + self._current.encrypt(value.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # plain text from before encryption
        token = stored[len(PREFIX):].encode()
        self._ensure()
        try:
            return MultiFernet(self._all).decrypt(token).decode()
        except (InvalidToken, ValueError) as exc:
            raise RuntimeError("personal data encrypted with a key that is not configured "
                               "(MINYI_PERSONAL_DATA_KEYS)") from exc

    def rotate(self, stored: str) -> str | None:
        """``stored`` encrypted with the current key, or None when it already is."""
        if stored.startswith(PREFIX):
            token = stored[len(PREFIX):].encode()
            if self._current is not None:
                try:
                    self._current.decrypt(token)
                    return None
                except InvalidToken:
                    pass
            return self.encrypt(self.decrypt(stored))
        return self.encrypt(stored)

    def blind_index(self, kind: str, value: str | None) -> str | None:
        if not value:
            return None
        self._ensure()
        normalised = normalise_phone(value) if kind == "phone" else value.strip().lower()
        if not normalised:
            return None
        return hmac.new(self._index_key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def normalise_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    if len(digits) == 13 and digits.startswith("86"):  # +86 138…: the same number as 138…
        digits = digits[2:]
    return digits


ring = KeyRing()


def configure(settings: Settings) -> None:
    ring.configure(settings)


def phone_index(value: str | None) -> str | None:
    return ring.blind_index("phone", value)


class PersonalText(TypeDecorator[str]):
    """Text stored encrypted (``pd1:`` + Fernet token), read back in clear."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return ring.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return ring.decrypt(value)
