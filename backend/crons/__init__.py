"""Cron jobs: the app declares them (``Crons``), the engine deploys and runs them.

``registry.py`` is what app code writes, ``schedule.py`` the pure arithmetic of when a cron
runs, ``jobs.py`` the state kept per cron and how several processes agree on each tick, and
``ticker.py`` the loop that runs them.
"""

from backend.crons.registry import CronJob, Crons, cron_jobs

__all__ = ["CronJob", "Crons", "cron_jobs"]
