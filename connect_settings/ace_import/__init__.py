"""Import an atlassian-connect-express (ACE) sequelize store: ``connect_import_ace``.

:mod:`.source` reads ACE's table, :mod:`.rows` decodes and validates one tenant's rows,
:mod:`.importer` writes them (one transaction per tenant), :mod:`.report` records and renders
what happened.
"""

from .importer import Importer, ImportOptions, import_tenant, plan_tenant
from .report import ImportReport, TenantOutcome
from .source import AceSource, SourceError

__all__ = [
    "AceSource",
    "ImportOptions",
    "ImportReport",
    "Importer",
    "SourceError",
    "TenantOutcome",
    "import_tenant",
    "plan_tenant",
]
