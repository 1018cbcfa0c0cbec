package enqueuecmd

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/cmd/internal/qfclient"
	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// maxDryRun is the most IDs one dry run answers: it holds them and their
// answers, and a larger purge is better previewed in parts.
const maxDryRun = 100_000

// dryRun answers, per ID, what a run would do now, deleting nothing: the
// same in-use view and listings the workers use, read with the read-only
// key pair when one is set, so a dry run cannot delete.
func dryRun(ctx context.Context, o options, getenv func(string) string, kind modelid.Kind, args []string, in *input, stdout io.Writer) error {
	if err := qfclient.Check(getenv, "--dry-run"); err != nil {
		return err
	}
	ids, err := collect(args, in, kind)
	if err != nil {
		return err
	}
	rdb, err := cli.ConnectRedis(ctx, o.redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	baseURL := cmp.Or(getenv("QIANFAN_BASE_URL"), qianfan.DefaultBaseURL)
	// Under the fleet's budget for the key that signs: the read pair's
	// (QFPURGE_READ_QPS, else QFPURGE_QPS, as the workers), or the full one's.
	qps := 10.0
	for _, name := range []string{"QFPURGE_QPS", "QFPURGE_READ_QPS"} {
		if name == "QFPURGE_READ_QPS" && getenv("QIANFAN_READ_ACCESS_KEY") == "" {
			continue
		}
		if s := getenv(name); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v < 0 {
				return cli.Usagef("%s %q: want a number of calls per second", name, s)
			}
			if v > 0 || name == "QFPURGE_QPS" {
				qps = v
			}
		}
	}
	qc, err := qfclient.Reader(rdb, getenv, baseURL, qps, "--dry-run")
	if err != nil {
		return err
	}
	answers, err := inuse.New(rdb, qc, inuse.Config{}).DryRun(ctx, kind, ids)
	if err != nil {
		return err
	}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Kind    modelid.Kind   `json:"kind"`
			DryRun  bool           `json:"dry_run"`
			Answers []inuse.Answer `json:"answers"`
		}{kind, true, answers})
	}
	return printAnswers(stdout, answers)
}

// collect reads every ID of the request (already checked) into memory.
func collect(args []string, in *input, kind modelid.Kind) ([]modelid.ID, error) {
	var ids []modelid.ID
	for _, a := range args {
		id, _ := modelid.ParseID(a)
		ids = append(ids, id)
	}
	if in.f != nil {
		r, err := in.rewind()
		if err != nil {
			return nil, err
		}
		sc := modelid.NewScanner(r, kind)
		for sc.Scan() {
			if len(ids) == maxDryRun {
				return nil, cli.Usagef("--dry-run answers at most %d IDs at a time; split the input", maxDryRun)
			}
			ids = append(ids, sc.ID())
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s again: %w", in.name, err)
		}
	}
	return modelid.Dedupe(ids), nil
}

// would says what a run would do with an ID of each outcome.
var would = map[inuse.Outcome]string{
	inuse.OutcomeExists:     "delete it",
	inuse.OutcomeInUse:      "protect it (in use)",
	inuse.OutcomeGone:       "skip it (already gone)",
	inuse.OutcomeNotFound:   "dead-letter it (not found)",
	inuse.OutcomeCannotTell: "wait (cannot tell)",
}

// printAnswers writes a table and a count per outcome.
func printAnswers(w io.Writer, answers []inuse.Answer) error {
	tw := cli.NewTable(w)
	fmt.Fprintln(tw, "ID\tA RUN NOW WOULD\tNAME\tTYPE\tCREATED\tWHY")
	count := map[inuse.Outcome]int{}
	for _, a := range answers {
		count[a.Outcome]++
		created := ""
		if !a.Created.IsZero() {
			created = a.Created.UTC().Format(time.DateOnly)
		}
		why := a.Reason
		if len(a.Users) > 0 {
			why = "used by " + strings.Join(a.Users, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, would[a.Outcome], a.Name, a.Type, created, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var parts []string
	for _, oc := range []inuse.Outcome{inuse.OutcomeExists, inuse.OutcomeInUse, inuse.OutcomeGone, inuse.OutcomeNotFound, inuse.OutcomeCannotTell} {
		if count[oc] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[oc], oc))
		}
	}
	_, err := fmt.Fprintf(w, "dry run, nothing deleted: %s\n", strings.Join(parts, ", "))
	return err
}
