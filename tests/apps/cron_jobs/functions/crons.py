from backend import Crons
from tests.apps.cron_jobs.functions import messages

crons = Crons()

crons.interval(
    "clear messages table",
    {"minutes": 1},
    messages.clearAll,
)
