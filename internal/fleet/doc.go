// Package fleet holds what the whole fleet of workers sharing one Redis must
// agree on, each fact owned by one type here and stored under keys no other
// package writes:
//
//   - The order of events (Stamp): whether a listing came after a lost
//     answer is decided by stamps, never by wall-clock times.
//     Key: qfpurge:{inv}:order (a counter).
//   - The API mode (APIModeStore): which Qianfan API the fleet deletes
//     through. V1's batchDelete is deprecated and may stop serving; V2
//     deletes one ID per call. With Auto the fleet speaks V1 until V1
//     answers that it is gone, then every worker switches to V2 at once.
//     Keys: qfpurge:api:v2 (the switch: reason, at) and qfpurge:api:workers
//     (the live members and their configured modes, scored by heartbeat);
//     a worker whose setting contradicts the fleet's does not join.
//   - The pause (PauseStore, Prober): the fleet's deletions held when a
//     problem that is no ID's fault stops every call (credentials rejected
//     or revoked, permission lost). Every worker waits, its batches queued
//     and their retries unspent; a prober reads with the credentials every
//     interval and, once that works, lets one delete call through (the
//     canary) before the fleet resumes, so a key that may read but not
//     delete is not retried by every worker at once. An operator can read,
//     set and lift the pause (qfpurge pause). Keys: qfpurge:pause (reason,
//     since, state, tries, manual), qfpurge:pause:canary (the one call
//     allowed while probing), qfpurge:pause:probe (the probing worker's lock).
//   - The call slots (Limiter): a fleet-wide QPS budget. Every worker takes
//     its call slots from the same schedule in Redis (one slot per interval,
//     handed out in order), so N replicas together never send more calls
//     per second than the budget, and no slot goes unused while callers
//     wait. The Limiter satisfies qianfan.Limiter; give it to the client
//     with qianfan.WithLimiter and the client waits on it before every
//     attempt, retries included. Keys: qfpurge:qps:<hash> (LimitKey: a hash
//     of the base URL and access key; the key itself is never stored).
//
// The key names are the on-disk state of running fleets: they do not change.
//
// Clock is the time every decision that depends on time reads, so tests
// move time instead of sleeping through it.
package fleet
