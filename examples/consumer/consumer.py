"""Follow qfpurge's outcome events with a Redis consumer group.

    python3 -m pip install redis        # into the python3 you run it with
    REDIS_URL=redis://127.0.0.1:6379/0 python3 consumer.py

On Debian and Ubuntu, apt-get install python3-redis installs it for the
system's /usr/bin/python3 only: run /usr/bin/python3 consumer.py then (a
python3 from pyenv, conda or a venv comes first in PATH and has its own).

Each event is one ID's outcome: deleted, presumed or dead (or a fleet event:
paused, resumed). Events are delivered at least once (a worker crash can
repeat one, and this consumer handles again what it had not acknowledged
when it stopped), so handle them idempotently, keyed on
(kind, id_type, id, outcome).
"""
import os

import redis

STREAM, GROUP = "qfpurge:events", "billing"
# The name must stay the same across restarts: the group keeps each
# consumer's unacknowledged entries under its name.
CONSUMER = os.environ.get("CONSUMER", os.uname().nodename)

r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=True)
try:
    # "0": the group starts with every event still in the stream; "$": only new ones.
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
except redis.ResponseError as e:
    if "BUSYGROUP" not in str(e):
        raise


def handle(entry_id, ev):
    if ev:  # None: the entry was trimmed from the stream before it was handled
        print(entry_id, ev.get("time"), ev.get("kind"), ev.get("id_type"), ev.get("id"), ev.get("outcome"),
              "log_id=" + ev.get("log_id", ""), "code=" + ev.get("code", ""), ev.get("message", ""))
    r.xack(STREAM, GROUP, entry_id)


# First what this consumer was given before it stopped and never
# acknowledged: ">" would never deliver those again. Reading from an ID
# returns this consumer's own pending entries after it.
last = "0"
while True:
    resp = r.xreadgroup(GROUP, CONSUMER, {STREAM: last}, count=100)
    entries = resp[0][1] if resp else []
    if not entries:
        break
    for entry_id, ev in entries:
        handle(entry_id, ev)
        last = entry_id

while True:
    # ">" asks for events never delivered to this group; block up to 5 s.
    for _stream, events in r.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=100, block=5000) or []:
        for entry_id, ev in events:
            handle(entry_id, ev)
