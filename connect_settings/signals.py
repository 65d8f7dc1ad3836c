"""Signals sent by connect_settings.

Lifecycle signals are sent after the lifecycle transaction has committed and after the 204
has been handed to the server, so receivers never delay or fail an installation; receivers
that do slow work should still enqueue it (Django tasks) rather than block a worker.
"""

from django.dispatch import Signal

#: A tenant installed the app or reinstalled it (new shared secret).
#: Arguments: ``sender`` (Tenant class), ``tenant``, ``created`` (bool: first install).
tenant_installed = Signal()

#: A tenant uninstalled the app; its data is kept until ``connect_purge``.
#: Arguments: ``sender``, ``tenant``.
tenant_uninstalled = Signal()

#: A tenant enabled the app. Arguments: ``sender``, ``tenant``.
tenant_enabled = Signal()

#: A tenant disabled the app. Arguments: ``sender``, ``tenant``.
tenant_disabled = Signal()

#: A stored setting changed, sent after the write commits.
#: Arguments: ``sender`` (AddonSetting class), ``tenant``, ``key``, ``old_value``,
#: ``new_value`` (``None`` after a delete), ``deleted`` (bool).
setting_changed = Signal()

#: A mirrored property's delivery ended (synced, pending a retry, or failed).
#: Arguments: ``sender`` (MirrorEntry class), ``tenant_id``, ``property_key``, ``status``,
#: ``version`` (the version that was sent).
property_mirrored = Signal()

#: A Forge lifecycle event (installed / upgraded) was handled for a tenant.
#: Arguments: ``sender`` (Tenant class), ``tenant``, ``event_type``, ``installation_id``.
forge_event = Signal()
