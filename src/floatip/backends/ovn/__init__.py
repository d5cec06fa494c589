"""The OVN backend (issue 11): floatip's resources as OVN Northbound rows, statuses from the
Southbound. ``translate`` and ``diff`` are pure; ``nb`` does the OVSDB I/O; ``backend`` runs
the loop behind the Backend protocol."""
from .backend import OvnBackend, OvnConfig

__all__ = ["OvnBackend", "OvnConfig"]
