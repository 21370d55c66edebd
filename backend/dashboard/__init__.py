"""The dashboard's system functions (``_system/dashboard:*``), reached with the admin key.

Every one is internal: no client reaches it, whatever its token, except a connection that
authenticated with the admin key (``backend/sync/admin.py``), which may call internal
functions. The page itself (``/_dashboard``) is ``backend/http/dashboard.py``; its code is
``client_js/dashboard/``.
"""

from backend.dashboard.functions import FUNCTIONS, PREFIX

__all__ = ["FUNCTIONS", "PREFIX"]
