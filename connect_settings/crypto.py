"""Encryption of tenants' shared secrets at rest (cryptography's MultiFernet).

``SECRET_KEYS`` lists keys newest first: the first encrypts, all of them decrypt, and
``connect_rotate_keys`` re-encrypts every stored secret with the first.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from .exceptions import SecretDecryptionError

_lock = threading.Lock()
_cipher: MultiFernet | None = None


def _fernet_key(material: str) -> bytes:
    """A Fernet key from a configured string.

    A proper Fernet key (``Fernet.generate_key()``) is used as is; any other string is
    stretched with SHA-256 so that operators may use any long random value.
    """
    raw = material.encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(b"connect_settings:" + raw).digest())


def configured_keys() -> list[str]:
    from .conf import connect_settings

    keys = connect_settings.SECRET_KEYS
    if isinstance(keys, str):
        # One string would silently become one key per character: refuse it (check E007).
        raise ImproperlyConfigured("CONNECT_SETTINGS['SECRET_KEYS'] must be a list of keys.")
    return [str(k).strip() for k in keys]


def keys_are_derived() -> bool:
    return not configured_keys()


def cipher() -> MultiFernet:
    global _cipher
    with _lock:
        if _cipher is None:
            materials = configured_keys() or [
                f"derived-from-SECRET_KEY:{django_settings.SECRET_KEY}"
            ]
            if any(not m for m in materials):
                raise ImproperlyConfigured("CONNECT_SETTINGS['SECRET_KEYS'] has an empty key.")
            _cipher = MultiFernet([Fernet(_fernet_key(m)) for m in materials])
        return _cipher


def reset() -> None:
    global _cipher
    with _lock:
        _cipher = None
    _decrypt_cached.cache_clear()


def encrypt(plaintext: str) -> str:
    return cipher().encrypt(plaintext.encode()).decode()


@lru_cache(maxsize=4096)
def _decrypt_cached(ciphertext: str) -> str:
    # Fernet's HMAC + AES costs tens of microseconds; the same ciphertext is decrypted on every
    # authenticated request of a tenant, so remember the result per ciphertext.
    return cipher().decrypt(ciphertext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _decrypt_cached(ciphertext)
    except InvalidToken as err:
        raise SecretDecryptionError(
            "A stored shared secret cannot be decrypted with the configured SECRET_KEYS."
        ) from err


def rotate(ciphertext: str) -> str:
    """The same secret encrypted with the newest key."""
    try:
        return cipher().rotate(ciphertext.encode()).decode()
    except InvalidToken as err:
        raise SecretDecryptionError(
            "A stored shared secret cannot be decrypted with the configured SECRET_KEYS."
        ) from err
