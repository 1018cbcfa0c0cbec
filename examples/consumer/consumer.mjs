// Follow qfpurge's outcome events with plain XREAD (no consumer group).
//
//   npm install                     (in this folder: package.json names ioredis)
//   REDIS_URL=redis://127.0.0.1:6379/0 node consumer.mjs [ID]
//
// Without ID it starts with events added from now on; 0 starts with every
// event still in the stream; an entry ID resumes after that entry. Keep
// `last` somewhere durable to resume after a restart.
import Redis from "ioredis";

const STREAM = "qfpurge:events";
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379/0");

// "$" means "after the newest entry" at the moment of each XREAD: passed to
// every read, it would skip what arrives between two reads. Turn it into
// the newest entry's ID once, then always read after the last ID seen.
async function start(arg) {
  if (arg !== undefined && arg !== "$") return arg;
  const newest = await redis.xrevrange(STREAM, "+", "-", "COUNT", 1);
  return newest.length > 0 ? newest[0][0] : "0-0";
}

let last = await start(process.argv[2]);
for (;;) {
  const res = await redis.xread("COUNT", 100, "BLOCK", 5000, "STREAMS", STREAM, last);
  for (const [, entries] of res ?? []) {
    for (const [id, flat] of entries) {
      const ev = {};
      for (let i = 0; i < flat.length; i += 2) ev[flat[i]] = flat[i + 1];
      console.log(id, ev.time, ev.kind, ev.id_type, ev.id, ev.outcome, `log_id=${ev.log_id}`, `code=${ev.code}`, ev.message ?? "");
      last = id;
    }
  }
}
