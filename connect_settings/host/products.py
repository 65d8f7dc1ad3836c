"""The two products the emulator can pretend to be, and what differs between them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRODUCTS", "Product", "get_product"]


@dataclass(frozen=True)
class Product:
    name: str
    display_name: str
    #: Path of the product's base URL on the site: Confluence lives under ``/wiki``, and app
    #: tokens' qsh is computed relative to it (PROTOCOL.md section 2).
    context_path: str
    #: The ports the Atlassian SDK has always run these products on, so they are easy to recall.
    default_port: int
    server_version: str
    plugins_version: str


PRODUCTS: dict[str, Product] = {
    "jira": Product("jira", "Jira", "", 2990, "100280", "1001.0.0-SNAPSHOT"),
    "confluence": Product("confluence", "Confluence", "/wiki", 1990, "6452", "1001.0.0-SNAPSHOT"),
}


def get_product(name: str) -> Product:
    try:
        return PRODUCTS[name.lower()]
    except (KeyError, AttributeError):
        choices = ", ".join(sorted(PRODUCTS))
        raise ValueError(f"Unknown product {name!r}: choose one of {choices}.") from None
