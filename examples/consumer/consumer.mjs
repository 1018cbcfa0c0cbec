// Follow qfpurge's outcome events with plain XREAD (no consumer group).
//
//   npm install                     (in this folder: package.json names ioredis)
//   REDIS_URL=redis://127.0.0.1:6379/0 node consumer.mjs [0]
//
// Keep `last` somewhere durable to resume after a restart; "$" starts with
// events added from now on, "0" with every event still in the stream.
import Redis from "ioredis";

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379/0");
let last = process.argv[2] ?? "$";

for (;;) {
  const res = await redis.xread("COUNT", 100, "BLOCK", 5000, "STREAMS", "qfpurge:events", last);
  for (const [, entries] of res ?? []) {
    for (const [id, flat] of entries) {
      const ev = {};
      for (let i = 0; i < flat.length; i += 2) ev[flat[i]] = flat[i + 1];
      console.log(ev.time, ev.kind, ev.id_type, ev.id, ev.outcome, `log_id=${ev.log_id}`, `code=${ev.code}`, ev.message);
      last = id;
    }
  }
}
