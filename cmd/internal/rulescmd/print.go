package rulescmd

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/schedule"
)

func quietSlog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return t.UTC().Format(time.DateOnly)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func printEntries(w io.Writer, entries []schedule.Entry) {
	tw := cli.NewTable(w)
	fmt.Fprintln(tw, "NAME\tKIND\tCRON\tLIMIT\tPROTECTION\tLINE")
	for _, e := range entries {
		prot := "on"
		if e.Rule.DeleteInUse {
			prot = "OFF"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", e.Name, e.Kind, e.Spec(), e.Rule.Limit, prot, e.Line)
	}
	tw.Flush()
}

// summary prints a run's header lines: what was planned, and its verdict.
func summary(w io.Writer, rec policy.Record) {
	fmt.Fprintf(w, "%s of rule %q (%ss): run %s, %s\n", rec.Mode, rec.Rule, rec.Kind, rec.ID, rec.Status)
	fmt.Fprintf(w, "by %s via %s, inventory taken %s, updated %s\n", cmp.Or(rec.By, "?"), rec.Trigger, stamp(rec.Inventory), stamp(rec.Updated))
	prot := "on: nothing a service uses is deleted"
	if !rec.Protection {
		prot = "OFF (protect_in_use: false)"
	}
	fmt.Fprintf(w, "protection %s; limit %s\n", prot, rec.Limit)
	t := rec.Totals
	fmt.Fprintf(w, "considered %d %ss; delete selections matched %d: delete %d, keep %d, protect %d; %d detail calls",
		t.Considered, rec.Kind, t.Matched, t.Delete, t.Keep, t.Protect, t.DetailCalls)
	if t.Vanished > 0 {
		fmt.Fprintf(w, " (%d models gone meanwhile, left out)", t.Vanished)
	}
	fmt.Fprintln(w)
	switch {
	case rec.Error != "":
		fmt.Fprintf(w, "ERROR: %s\n", rec.Error)
	case rec.Blocked != "" && rec.OverrideLimit && rec.Mode == policy.ModeRun:
		fmt.Fprintf(w, "OVER THE LIMIT, OVERRIDDEN: %s\n", rec.Blocked)
	case rec.Blocked != "":
		fmt.Fprintf(w, "BLOCKED: %s; a run deletes nothing (qfpurge rules run --override-limit runs it once anyway)\n", rec.Blocked)
	}
	if rec.Status == policy.StatusEnqueued {
		fmt.Fprintf(w, "enqueued %s in %s; follow them with: qfpurge rules runs show %s\n",
			modelid.Plural(t.Delete, "deletion", "deletions"), modelid.Plural(rec.Batches, "batch", "batches"), rec.ID)
	}
}

var actionOrder = map[policy.Action]int{policy.ActionDelete: 0, policy.ActionProtect: 1, policy.ActionKeep: 2}

func sortItems(items []policy.ItemOutcome) {
	slices.SortStableFunc(items, func(a, b policy.ItemOutcome) int {
		return cmp.Or(cmp.Compare(actionOrder[a.Action], actionOrder[b.Action]), strings.Compare(a.Name, b.Name),
			cmp.Compare(a.Rank, b.Rank), strings.Compare(a.ID, b.ID))
	})
}

func printPlan(w io.Writer, rec policy.Record, p *policy.Plan, onlySummary bool) {
	summary(w, rec)
	if p == nil || onlySummary || len(p.Items) == 0 {
		return
	}
	items := make([]policy.ItemOutcome, len(p.Items))
	for i, it := range p.Items {
		items[i].Item = it
	}
	sortItems(items)
	fmt.Fprintln(w)
	printItems(w, rec, items, false)
}

func printItems(w io.Writer, rec policy.Record, items []policy.ItemOutcome, outcomes bool) {
	tw := cli.NewTable(w)
	head := "ACTION\tID\tNAME\t"
	if rec.Kind == "version" {
		head += "VERSION\tRANK\t"
	}
	head += "CREATED\t"
	if outcomes {
		head += "OUTCOME\t"
	}
	fmt.Fprintln(tw, head+"REASON")
	for _, it := range items {
		row := string(it.Action) + "\t" + it.ID + "\t" + it.Name + "\t"
		if rec.Kind == "version" {
			row += cmp.Or(it.Version, "?") + "\t" + rankText(it.Rank) + "\t"
		}
		row += day(it.Created) + "\t"
		if outcomes {
			row += outcomeText(it) + "\t"
		}
		fmt.Fprintln(tw, row+it.Reason)
	}
	tw.Flush()
}

func rankText(r int) string {
	if r == 0 {
		return "?"
	}
	return strconv.Itoa(r)
}

func outcomeText(it policy.ItemOutcome) string {
	switch {
	case it.Action != policy.ActionDelete:
		return "-"
	case it.Outcome == nil:
		return "(none yet)"
	case it.Outcome.LogID != "":
		return string(it.Outcome.State) + " log_id " + it.Outcome.LogID
	case it.Outcome.Message != "":
		return string(it.Outcome.State) + ": " + it.Outcome.Message
	}
	return string(it.Outcome.State)
}

func printRuns(w io.Writer, runs []policy.Record) {
	tw := cli.NewTable(w)
	fmt.Fprintln(tw, "RUN\tRULE\tMODE\tTRIGGER\tSTATUS\tCREATED\tDELETE\tKEEP\tPROTECT\tNOTE")
	for _, r := range runs {
		note := r.Error
		if note == "" && r.Blocked != "" {
			note = "over the limit"
			if r.OverrideLimit && r.Mode == policy.ModeRun {
				note += ", overridden"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.ID, r.Rule, r.Mode, r.Trigger, r.Status, stamp(r.Created),
			r.Totals.Delete, r.Totals.Keep, r.Totals.Protect, note)
	}
	tw.Flush()
}

func printRun(w io.Writer, rec policy.Record, items []policy.ItemOutcome, total, offset int) {
	summary(w, rec)
	if total == 0 {
		return
	}
	fmt.Fprintf(w, "\nitems %d to %d of %d:\n", offset+1, offset+len(items), total)
	printItems(w, rec, items, true)
}
