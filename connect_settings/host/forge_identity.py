"""The emulated site's Forge side: the app's identity, its installation and the Forge keys.

One Forge app per site (the Forge version of the Connect app whose key is
``connect_key``: its manifest's ``app.connect.key``). The cloud id belongs to the site and never
changes; the installation id changes on every Forge reinstall (PROTOCOL.md section 7). The
RSA keys sign Forge Invocation Tokens (the JWKS serves their public halves); the HMAC secret
signs the opaque OAuth tokens only this emulator reads back.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "APP_ARI_PREFIX",
    "ENVIRONMENTS",
    "INSTALLATION_ARI_PREFIX",
    "ForgeIdentity",
    "ForgeKey",
    "check_app_id",
    "check_environment",
    "new_app_id",
]

APP_ARI_PREFIX = "ari:cloud:ecosystem::app/"
INSTALLATION_ARI_PREFIX = "ari:cloud:ecosystem::installation/"
ENVIRONMENT_ARI_PREFIX = "ari:cloud:ecosystem::environment/"
ENVIRONMENTS = ("DEVELOPMENT", "STAGING", "PRODUCTION")
#: What may follow an ARI's last "/": a uuid in practice; nothing that could break a URL.
_ARI_TAIL = re.compile(r"[A-Za-z0-9-]{1,64}")


def check_app_id(app_id: str) -> str:
    if (
        not isinstance(app_id, str)
        or not app_id.startswith(APP_ARI_PREFIX)
        or not _ARI_TAIL.fullmatch(app_id[len(APP_ARI_PREFIX) :])
    ):
        raise ValueError(f"A Forge app id looks like {APP_ARI_PREFIX}<uuid>.")
    return app_id


def check_environment(environment: str) -> str:
    if environment not in ENVIRONMENTS:
        raise ValueError(
            f"Unknown Forge environment {environment!r}: one of {', '.join(ENVIRONMENTS)}."
        )
    return environment


def new_app_id() -> str:
    return f"{APP_ARI_PREFIX}{uuid.uuid4()}"


def _new_installation_id() -> str:
    return f"{INSTALLATION_ARI_PREFIX}{uuid.uuid4()}"


def _bare(ari: str) -> str:
    return ari.rsplit("/", 1)[-1]


def _new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class ForgeKey:
    """One FIT signing key; ``kid`` is what the JWKS and the tokens' headers name it by."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> ForgeKey:
        return cls(kid=f"forge-emulator-{uuid.uuid4()}", private_key=_new_private_key())

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_json(self) -> dict[str, str]:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {"kid": self.kid, "privateKey": pem.decode("ascii")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ForgeKey:
        key = serialization.load_pem_private_key(
            str(data["privateKey"]).encode("ascii"), password=None
        )
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("a Forge key is not an RSA key")
        return cls(kid=str(data["kid"]), private_key=key)


@dataclass
class ForgeIdentity:
    """Hold the site's state lock while changing any of this."""

    app_id: str = field(default_factory=new_app_id)
    cloud_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    installation_id: str = field(default_factory=_new_installation_id)
    environment: str = "DEVELOPMENT"
    environment_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    app_version: str = "1.0.0"
    #: The manifest's ``app.connect.key``: set by the constructor, else by the first Connect
    #: install (the Connect app this site runs is the one that moves to Forge).
    connect_key: str | None = None
    #: The remote endpoint of the app's lifecycle ``trigger`` (installed / upgraded events).
    events_url: str | None = None
    #: When the site moved from the Connect version to the Forge version (None: not moved).
    moved_at: float | None = None
    token_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)
    #: Oldest first; the last one signs. Created on first use: RSA key generation is slow,
    #: and most sites never mint a FIT.
    keys: list[ForgeKey] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        check_environment(self.environment)
        check_app_id(self.app_id)

    @property
    def app_uuid(self) -> str:
        return _bare(self.app_id)

    @property
    def installation_uuid(self) -> str:
        """What a Forge event's ``id`` carries: the installation id without its ARI prefix."""
        return _bare(self.installation_id)

    @property
    def environment_id(self) -> str:
        return f"{ENVIRONMENT_ARI_PREFIX}{self.app_uuid}/{self.environment_uuid}"

    def signing_key(self) -> ForgeKey:
        """The key that signs from now on (created on first use)."""
        if not self.keys:
            self.keys.append(ForgeKey.generate())
        return self.keys[-1]

    def rotate_key(self, *, retire_old: bool = False) -> ForgeKey:
        self.signing_key()  # a rotation always has a key to rotate from
        key = ForgeKey.generate()
        self.keys = [key] if retire_old else [*self.keys, key]
        return key

    def new_installation(self) -> str:
        self.installation_id = _new_installation_id()
        return self.installation_id

    def next_major_version(self) -> str:
        major = self.app_version.split(".", 1)[0]
        self.app_version = f"{int(major) + 1 if major.isdigit() else 2}.0.0"
        return self.app_version

    def summary(self) -> dict[str, Any]:
        """A JSON view without keys or secrets."""
        return {
            "appId": self.app_id,
            "cloudId": self.cloud_id,
            "installationId": self.installation_id,
            "environment": {"type": self.environment, "id": self.environment_id},
            "appVersion": self.app_version,
            "connectKey": self.connect_key,
            "eventsUrl": self.events_url,
            "movedToForge": self.moved_at is not None,
            "movedAt": self.moved_at,
            "kids": [k.kid for k in self.keys],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "appId": self.app_id,
            "cloudId": self.cloud_id,
            "installationId": self.installation_id,
            "environment": self.environment,
            "environmentUuid": self.environment_uuid,
            "appVersion": self.app_version,
            "connectKey": self.connect_key,
            "eventsUrl": self.events_url,
            "movedAt": self.moved_at,
            "tokenSecret": self.token_secret,
            "keys": [k.to_json() for k in self.keys],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ForgeIdentity:
        moved = data.get("movedAt")
        return cls(
            app_id=str(data["appId"]),
            cloud_id=str(data["cloudId"]),
            installation_id=str(data["installationId"]),
            environment=str(data.get("environment", "DEVELOPMENT")),
            environment_uuid=str(data["environmentUuid"]),
            app_version=str(data.get("appVersion", "1.0.0")),
            connect_key=_optional_str(data.get("connectKey")),
            events_url=_optional_str(data.get("eventsUrl")),
            moved_at=float(moved) if moved is not None else None,
            token_secret=str(data["tokenSecret"]),
            keys=[ForgeKey.from_json(dict(k)) for k in data.get("keys", [])],
        )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
