"""A local Atlassian Cloud site (Jira or Confluence) for developing and testing Connect apps.

It serves its own install-key server, installs an app from its descriptor with signed
lifecycle callbacks, answers the app properties REST API with the product's statuses and
limits, shows a "Manage apps" admin page with the app's page in an iframe, and injects faults
on demand. It also stands in for the Forge platform (:mod:`.forge`): a JWKS, Forge Invocation
Tokens, system tokens on an ``apiBaseUrl`` route, lifecycle events and the move from Connect.
No Django is needed to run it; ``manage.py connect_host`` is its command line.
"""

from __future__ import annotations

from .callbacks import InstallError
from .descriptor import DescriptorError
from .emulator import AppNotInstalled, Emulator
from .faults import Fault
from .forge_remote import ForgeDelivery
from .properties import MAX_KEY_LENGTH, MAX_PROPERTIES, MAX_VALUE_LENGTH, RESERVED_KEY
from .state import Installation, LifecycleEvent, StateFileError

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PROPERTIES",
    "MAX_VALUE_LENGTH",
    "RESERVED_KEY",
    "AppNotInstalled",
    "DescriptorError",
    "Emulator",
    "Fault",
    "ForgeDelivery",
    "InstallError",
    "Installation",
    "LifecycleEvent",
    "StateFileError",
]
