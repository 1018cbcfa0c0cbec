"""Follow qfpurge's outcome events with a Redis consumer group.

    python3 -m pip install redis        # into the python3 you run it with
    REDIS_URL=redis://127.0.0.1:6379/0 python3 consumer.py

On Debian and Ubuntu, apt-get install python3-redis installs it for the
system's /usr/bin/python3 only: run /usr/bin/python3 consumer.py then (a
python3 from pyenv, conda or a venv comes first in PATH and has its own).

Each event is one ID's outcome: deleted, presumed or dead. Events are
delivered at least once (a worker crash can repeat one), so handle them
idempotently, keyed on (kind, id_type, id, outcome).
"""
import os

import redis

STREAM, GROUP, CONSUMER = "qfpurge:events", "billing", os.uname().nodename

r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=True)
try:
    # "0": the group starts with every event still in the stream; "$": only new ones.
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
except redis.ResponseError as e:
    if "BUSYGROUP" not in str(e):
        raise

while True:
    # ">" asks for events never delivered to this group; block up to 5 s.
    for _stream, events in r.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=100, block=5000) or []:
        for entry_id, ev in events:
            print(ev["time"], ev["kind"], ev["id_type"], ev["id"], ev["outcome"],
                  "log_id=" + ev["log_id"], "code=" + ev["code"], ev["message"])
            r.xack(STREAM, GROUP, entry_id)
