"""The tenants, keys and users the hostile suite attacks, and the tokens it forges from them.

Needs configured Django settings (the runner's or pytest's): ``seed`` writes through the ORM,
and the token helpers read the app key and base URL from ``CONNECT_SETTINGS``.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Principal", "World", "build_world", "none_token", "seed", "session_token"]

# A fresh kid per run: install keys are cached per kid (immutable), across workers and runs.
INSTALL_KID = f"resilience/install-kid-{uuid.uuid4().hex[:12]}"
ADMIN_USER = "resilience-admin"


@dataclass
class Principal:
    """A tenant as the attacker might know it (and, for checks, its secrets)."""

    name: str
    client_key: str
    secret: str
    base_url: str
    installation_id: str
    api_token: str
    installed: bool = True
    enabled: bool = True


@dataclass
class World:
    app_url: str
    app_key: str
    key_server: Any
    installer: Any
    forge: Any
    tenants: dict[str, Principal]
    admin_password: str
    secret_keys: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Principal:
        return self.tenants[name]

    def secrets(self) -> list[str]:
        """Every value that must never appear in an answer."""
        out = [self.admin_password, *self.secret_keys]
        for t in self.tenants.values():
            out += [t.secret, t.api_token]
        return [s for s in out if s]


def _principal(name: str, **flags: Any) -> Principal:
    uid = secrets.token_hex(4)
    return Principal(
        name=name,
        client_key=f"resilience-{name}-{uid}",
        secret=f"secret-{name}-{secrets.token_urlsafe(32)}",
        base_url=f"http://127.0.0.1:9/{name}",  # loopback, allowed; never called
        installation_id=f"ari:cloud:ecosystem::installation/{_uuid()}",
        api_token=f"api-token-{name}-{secrets.token_urlsafe(12)}",
        **flags,
    )


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def build_world(app_url: str, key_server: Any) -> World:
    """Four tenants (installed ``a`` and ``b``, ``disabled``, ``gone`` = uninstalled), an
    install key on ``key_server``, a Forge signer whose JWKS it also serves."""
    from connect_settings.conf import connect_settings
    from connect_settings.testing import ForgeSigner, Installer

    tenants = {
        "a": _principal("a"),
        "b": _principal("b"),
        "disabled": _principal("disabled", enabled=False),
        "gone": _principal("gone", installed=False, enabled=False),
    }
    return World(
        app_url=app_url.rstrip("/"),
        app_key=str(connect_settings.APP_KEY),
        key_server=key_server,
        installer=Installer(key_server, kid=INSTALL_KID),
        forge=ForgeSigner(key_server),
        tenants=tenants,
        admin_password=f"pw-{secrets.token_urlsafe(16)}",
        secret_keys=[str(k) for k in connect_settings.SECRET_KEYS],
    )


def seed(world: World) -> None:
    """Store the world's tenants, their settings, their Forge mappings and a superuser."""
    from django.contrib.auth import get_user_model

    from connect_settings import store
    from connect_settings.configuration import save_configuration
    from connect_settings.models import ForgeInstallation
    from connect_settings.testing import make_tenant

    for t in world.tenants.values():
        tenant = make_tenant(
            t.client_key,
            t.secret,
            addon_key=world.app_key,
            base_url=t.base_url,
            display_url=t.base_url,
            installation_id=t.installation_id,
        )
        save_configuration(
            tenant, {"team_name": f"Team {t.name}", "api_token": t.api_token}, account_id="seed"
        )
        store.set("flags", {"beta": t.name == "a"}, t.client_key)
        ForgeInstallation.objects.update_or_create(
            installation_id=t.installation_id,
            defaults={"tenant": tenant, "cloud_id": "11111111-2222-3333-4444-555555555555"},
        )
        if not t.enabled or not t.installed:
            type(tenant).objects.filter(pk=tenant.pk).update(
                enabled=t.enabled, installed=t.installed
            )
    from connect_settings.tenants import invalidate

    for t in world.tenants.values():
        invalidate(t.client_key)
    user_model = get_user_model()
    if not user_model.objects.filter(username=ADMIN_USER).exists():
        user_model.objects.create_superuser(ADMIN_USER, "admin@example.com", world.admin_password)


# --- tokens ------------------------------------------------------------------------------------


def session_token(
    world: World, tenant: Principal, *, secret: str | None = None, **claims: Any
) -> str:
    """An app session token (what ``X-acpt`` carries) for ``tenant``."""
    from connect_settings.jwt.tokens import mint_hs256

    ttl = claims.pop("ttl", 900)
    now = claims.pop("now", None)
    body: dict[str, Any] = {
        "iss": world.app_key,
        "aud": [tenant.client_key],
        "sub": "557058:resilience-admin",
        "context": {},
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return mint_hs256(body, secret or tenant.secret, ttl=ttl, now=now)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def none_token(claims: dict[str, Any]) -> str:
    """``alg: none``: no signature at all."""
    import time

    now = int(time.time())
    body = {"iat": now, "exp": now + 180, **claims}
    header = b64(json.dumps({"typ": "JWT", "alg": "none"}).encode())
    return f"{header}.{b64(json.dumps(body).encode())}."


def resign(token: str, header_changes: dict[str, Any], secret: str) -> str:
    """``token`` with its header changed and signed again with HS256 under ``secret``."""
    import hashlib
    import hmac

    head, body, _ = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    header.update(header_changes)
    signing = f"{b64(json.dumps(header).encode())}.{body}"
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(sig)}"


def session_token_for(client_key: str, secret: str, account_id: str = "557058:load") -> str:
    """A session token as the app mints it, from a clientKey and its current secret."""
    from connect_settings.conf import connect_settings
    from connect_settings.jwt.tokens import mint_hs256

    claims = {"iss": connect_settings.APP_KEY, "aud": [client_key], "sub": account_id}
    return mint_hs256({**claims, "context": {}}, secret, ttl=900)
