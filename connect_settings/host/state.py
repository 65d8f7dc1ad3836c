"""What the emulated site remembers: its identity, signing key, installed apps, properties.

Everything lives in memory behind one lock. With a state file, every change is written
through (atomically, owner-only: the file holds shared secrets and the private key), so a
restarted emulator keeps its clientKey, its key pair and the apps' secrets and properties.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .forge_identity import ForgeIdentity

__all__ = ["HostState", "Installation", "LifecycleEvent", "StateFileError"]

STATE_VERSION = 1
MAX_EVENTS = 200


class StateFileError(Exception):
    """The state file cannot be read or belongs to another product."""


@dataclass
class Installation:
    """One app installed on the site. ``shared_secret`` is kept out of ``repr``."""

    key: str
    descriptor_url: str
    descriptor: dict[str, Any]
    shared_secret: str = field(repr=False)
    installation_id: str
    enabled: bool = True
    installed_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        name = self.descriptor.get("name")
        if isinstance(name, str) and name:
            return name
        return self.key

    @property
    def app_base_url(self) -> str:
        return str(self.descriptor["baseUrl"]).rstrip("/")

    def summary(self) -> dict[str, Any]:
        """A JSON view without the shared secret."""
        return {
            "key": self.key,
            "name": self.name,
            "baseUrl": self.app_base_url,
            "descriptorUrl": self.descriptor_url,
            "enabled": self.enabled,
            "state": "ENABLED" if self.enabled else "DISABLED",
            "installationId": self.installation_id,
            "installedAt": self.installed_at,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Installation:
        return cls(
            key=str(data["key"]),
            descriptor_url=str(data["descriptor_url"]),
            descriptor=dict(data["descriptor"]),
            shared_secret=str(data["shared_secret"]),
            installation_id=str(data["installation_id"]),
            enabled=bool(data.get("enabled", True)),
            installed_at=float(data.get("installed_at", time.time())),
        )


@dataclass(frozen=True)
class LifecycleEvent:
    """A lifecycle callback the emulator sent, for the admin page and for tests."""

    app_key: str
    event: str
    url: str
    status: int | None
    ok: bool
    detail: str = ""
    at: float = field(default_factory=time.time)


def _new_account_id() -> str:
    # The shape of Atlassian account ids of long-standing users: "557058:<uuid>".
    return f"557058:{uuid.uuid4()}"


class HostState:
    """The site's state; use :attr:`lock` around every read-modify-write."""

    def __init__(
        self,
        product: str,
        *,
        client_key: str | None = None,
        account_id: str | None = None,
        path: Path | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.product = product
        self.path = path
        self.client_key = client_key or str(uuid.uuid4())
        self.account_id = account_id or _new_account_id()
        self.private_key = private_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        # A fresh kid per key pair: apps cache keys per kid forever (PROTOCOL.md section 3).
        self.kid = kid or f"emulator/{uuid.uuid4()}"
        self.installations: dict[str, Installation] = {}
        #: App properties per app key: property key -> parsed JSON value. Kept apart from the
        #: installations because they outlive an uninstall (the Forge version of an app reads
        #: them after its Connect version is removed).
        self.properties: dict[str, dict[str, Any]] = {}
        self.events: deque[LifecycleEvent] = deque(maxlen=MAX_EVENTS)
        #: The Forge version of the site's app: its ids, keys and whether the site moved.
        self.forge = ForgeIdentity()

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def app_properties(self, app_key: str) -> dict[str, Any]:
        """The live property dict of an app (created empty); hold :attr:`lock`."""
        return self.properties.setdefault(app_key, {})

    # Persistence ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "version": STATE_VERSION,
            "product": self.product,
            "clientKey": self.client_key,
            "accountId": self.account_id,
            "kid": self.kid,
            "privateKey": pem.decode("ascii"),
            "installations": {k: i.to_json() for k, i in self.installations.items()},
            "properties": self.properties,
            "forge": self.forge.to_json(),
        }

    def save(self) -> None:
        """Write the state file if there is one (atomically, mode 0600)."""
        if self.path is None:
            return
        with self.lock:
            text = json.dumps(self.to_json(), indent=2, sort_keys=True)
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".connect-host-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def open(
        cls,
        product: str,
        path: Path | None,
        *,
        client_key: str | None = None,
        account_id: str | None = None,
    ) -> HostState:
        """A fresh state, or the one saved at ``path`` when that file exists."""
        if path is None or not path.exists():
            state = cls(product, client_key=client_key, account_id=account_id, path=path)
            state.save()
            return state
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StateFileError(f"Cannot read the state file {path}: {err}") from err
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateFileError(f"{path} is not a connect_host state file (version 1).")
        if data.get("product") != product:
            raise StateFileError(
                f"{path} holds a {data.get('product')} site; start the emulator with "
                f"--product {data.get('product')} or use another state file."
            )
        try:
            key = serialization.load_pem_private_key(
                str(data["privateKey"]).encode("ascii"), password=None
            )
            if not isinstance(key, rsa.RSAPrivateKey):
                raise TypeError("not an RSA key")
            state = cls(
                product,
                client_key=str(data["clientKey"]),
                account_id=str(data["accountId"]),
                path=path,
                private_key=key,
                kid=str(data["kid"]),
            )
            state.installations = {
                str(k): Installation.from_json(v) for k, v in dict(data["installations"]).items()
            }
            state.properties = {
                str(k): dict(v) for k, v in dict(data.get("properties", {})).items()
            }
            # Files written before the emulator learnt Forge have none: the site gets one.
            if "forge" in data:
                state.forge = ForgeIdentity.from_json(dict(data["forge"]))
        except (KeyError, TypeError, ValueError) as err:
            raise StateFileError(f"The state file {path} is damaged: {err}") from err
        return state
