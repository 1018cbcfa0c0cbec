package monitor

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// maxShownIDs is how many IDs a formatted payload or result lists.
const maxShownIDs = 20

// FormatPayload renders a qfpurge task payload for asynqmon, e.g.
//
//	model · 3 int IDs: 1001, 1002, 1003 · split from abc (bisect)
//
// A payload that is not qfpurge's is shown as its text.
func FormatPayload(taskType string, payload []byte) string {
	if taskType != tasks.TypeDelete && taskType != tasks.TypeDeleteBatch {
		return clip(string(payload), 2000)
	}
	var p tasks.Payload
	if err := json.Unmarshal(payload, &p); err != nil {
		return "unreadable payload (" + err.Error() + "): " + clip(string(payload), 500)
	}
	parts := []string{string(p.Kind)}
	if len(p.IDs) > 0 {
		parts = append(parts, idList(p.IDs))
	}
	if p.Parent != "" {
		parts = append(parts, fmt.Sprintf("split from %s (%s)", p.Parent, p.Split))
	}
	if p.Run != "" {
		parts = append(parts, fmt.Sprintf("planned by rule %s (run %s)", p.Rule, p.Run))
	}
	if len(p.Rejected) > 0 {
		parts = append(parts, modelid.Plural(len(p.Rejected), "unreadable job", "unreadable jobs"))
	}
	return strings.Join(parts, " · ")
}

// FormatResult renders a finished batch's result for asynqmon, e.g.
//
//	deleted 40 int IDs: 1001, … · log_id 2443985832 · 2 attempts
func FormatResult(taskType string, res []byte) string {
	if len(res) == 0 {
		return ""
	}
	var r tasks.Result
	if err := json.Unmarshal(res, &r); err != nil || (taskType != tasks.TypeDelete && taskType != tasks.TypeDeleteBatch) {
		return clip(string(res), 2000)
	}
	var parts []string
	add := func(what string, ids []modelid.ID) {
		if len(ids) > 0 {
			parts = append(parts, what+" "+idList(ids))
		}
	}
	add("deleted", r.Deleted)
	add("deleted (verified by a listing after a lost answer)", r.Verified)
	add("already deleted", r.AlreadyDeleted)
	add("protected (used by a service)", r.Protected)
	add("presumed deleted", r.Presumed)
	add("dead", r.Dead)
	if len(r.SplitInto) > 0 {
		parts = append(parts, "split into "+strings.Join(r.SplitInto, ", "))
	}
	if r.Reason != "" {
		parts = append(parts, "reason: "+r.Reason)
	}
	if r.LogID != "" {
		parts = append(parts, "log_id "+r.LogID)
	}
	if r.Attempts > 1 {
		parts = append(parts, fmt.Sprintf("%d attempts", r.Attempts))
	}
	if r.At != "" {
		parts = append(parts, "at "+r.At)
	}
	if len(parts) == 0 {
		return clip(string(res), 2000)
	}
	return strings.Join(parts, " · ")
}

// idList renders "3 int IDs: 1, 2, 3", listing at most maxShownIDs.
func idList(ids []modelid.ID) string {
	typ := ids[0].Type()
	for _, id := range ids[1:] {
		if id.Type() != typ {
			typ = "mixed"
			break
		}
	}
	noun := "IDs"
	if len(ids) == 1 {
		noun = "ID"
	}
	shown := make([]string, 0, min(len(ids), maxShownIDs))
	for _, id := range ids[:min(len(ids), maxShownIDs)] {
		shown = append(shown, id.String())
	}
	s := fmt.Sprintf("%d %s %s: %s", len(ids), typ, noun, strings.Join(shown, ", "))
	if len(ids) > maxShownIDs {
		s += fmt.Sprintf(", … (%d more)", len(ids)-maxShownIDs)
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
