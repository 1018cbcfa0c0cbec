// Package asynqlayout names qfpurge's Asynq queue and the Redis keys of
// Asynq's private layout that qfpurge reads or repairs directly, so that
// layout is written down in one place. Asynq v0.26 keeps a queue's keys under "asynq:{<queue>}:"; its
// exported API offers no way to list a group's tasks without its name or to
// read the archive by time, which the stranded-group sweep and the archive
// reconciliation need. The package test checks every name against keys that
// Asynq itself writes, so an upgrade that moves them fails the suite.
package asynqlayout

// Queue is the Asynq queue every qfpurge task uses.
const Queue = "qfpurge"

func prefix(queue string) string { return "asynq:{" + queue + "}:" }

// Groups is the set of a queue's group names that the aggregator visits.
func Groups(queue string) string { return prefix(queue) + "groups" }

// Group is the sorted set of the tasks waiting in one group.
func Group(queue, group string) string { return prefix(queue) + "g:" + group }

// Archived is the sorted set of a queue's archived task IDs, scored by the
// Unix time (seconds) they were archived.
func Archived(queue string) string { return prefix(queue) + "archived" }

// Paused exists while a queue is paused.
func Paused(queue string) string { return prefix(queue) + "paused" }

// Lease is the sorted set of a queue's running task IDs, scored by the Unix
// time (seconds) their worker's lease on them runs out. A killed worker's
// tasks are handed back once their lease has expired.
func Lease(queue string) string { return prefix(queue) + "lease" }

// Queues is the set of every queue's name; Asynq's client adds a queue's
// name before its first task.
const Queues = "asynq:queues"

// TaskPrefix prefixes a queue's task hashes; Task names one.
func TaskPrefix(queue string) string { return prefix(queue) + "t:" }

// Task is the hash of one task: its encoded Message under "msg", its
// "state", and per state "pending_since" (Unix nanoseconds) or "group".
func Task(queue, id string) string { return TaskPrefix(queue) + id }

// Pending is the list of a queue's task IDs ready to run.
func Pending(queue string) string { return prefix(queue) + "pending" }

// Scheduled is the sorted set of a queue's delayed task IDs, scored by the
// Unix time (seconds) they become ready.
func Scheduled(queue string) string { return prefix(queue) + "scheduled" }

// AggregationSets is the sorted set of a queue's aggregation sets (a
// group's tasks taken out to be merged), scored by the Unix time (seconds)
// after which Asynq's recoverer puts their tasks back into the group.
func AggregationSets(queue string) string { return prefix(queue) + "aggregation_sets" }

// AggregationSet is one aggregation set of a group: a sorted set of task
// IDs with their group scores. Asynq's recoverer finds the group from the
// key, by cutting it at its last ':'.
func AggregationSet(queue, group, id string) string { return Group(queue, group) + ":" + id }
