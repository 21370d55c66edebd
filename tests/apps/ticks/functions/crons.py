from backend import Crons
from tests.apps.ticks.functions import ticks

crons = Crons()
crons.interval("every second", ticks.record, {"cron": "every second"}, seconds=1)
