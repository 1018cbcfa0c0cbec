package policy

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unique"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Action is what a plan does with an item.
type Action string

// The actions. Items no delete selection matched are counted, not listed.
const (
	ActionDelete  Action = "delete"
	ActionKeep    Action = "keep"    // a keep selection won over a delete one
	ActionProtect Action = "protect" // a service uses it
)

// Item is one model or version a delete selection matched, and what
// happens to it.
type Item struct {
	Action Action `json:"action"`
	// ID is the am- (model) or amv- (version) ID; deletions go out by it.
	ID    string `json:"id"`
	IntID int64  `json:"int_id,omitempty"`
	// Model is a version's model (am-); Name and Type are the model's.
	Model   string    `json:"model,omitempty"`
	Name    string    `json:"name"`
	Type    string    `json:"type,omitempty"`
	Version string    `json:"version,omitempty"`
	Created time.Time `json:"created,omitzero"`
	// Rank is a version's place among its model's versions, 1 the newest.
	Rank     int      `json:"rank,omitempty"`
	Reason   string   `json:"reason"`
	Services []string `json:"services,omitempty"`
}

// Totals count a plan.
type Totals struct {
	// Considered is every model (or version) of the account the rule
	// looked at; Matched those a delete selection matched, which end as
	// Delete, Keep or Protect.
	Considered int `json:"considered"`
	Matched    int `json:"matched"`
	Delete     int `json:"delete"`
	Keep       int `json:"keep"`
	Protect    int `json:"protect"`
	// DetailCalls are the V1 modelDetail calls made for version times;
	// Vanished the models they found deleted since the listing.
	DetailCalls int `json:"detail_calls"`
	Vanished    int `json:"vanished,omitempty"`
}

// Plan is what a rule does to the account at one moment: every item a
// delete selection matched, with its action and reason, and the totals.
// A blocked plan deletes nothing.
type Plan struct {
	Rule      string       `json:"rule"`
	Kind      modelid.Kind `json:"kind"`
	At        time.Time    `json:"planned_at"`
	Inventory time.Time    `json:"inventory_taken"`
	// Protection is false when the rule deletes what services use.
	Protection bool   `json:"protection"`
	Limit      Limit  `json:"limit"`
	Blocked    string `json:"blocked,omitempty"`
	Totals     Totals `json:"totals"`
	Items      []Item `json:"items"`
}

// Deletions are the IDs the plan deletes, in order.
func (p *Plan) Deletions() []modelid.ID {
	var out []modelid.ID
	for _, it := range p.Items {
		if it.Action == ActionDelete {
			out = append(out, modelid.StringID(it.ID))
		}
	}
	return out
}

// facts are what the conditions look at; zero created or rank is unknown.
type facts struct {
	name, typ string // typ canonical, "" when not recognised
	rawType   string
	created   time.Time
	rank      int
}

// ready compiles the rule when it is not yet.
func (r *Rule) ready() error {
	for _, ss := range [][]Selector{r.Delete, r.Keep} {
		for i := range ss {
			if !ss[i].compiled() {
				if ps := r.Compile(); len(ps) > 0 {
					return fmt.Errorf("rule %q: line %d: %s", r.Name, ps[0].Line, ps[0].Msg)
				}
				return nil
			}
		}
	}
	return nil
}

// modelMatch checks the conditions on the model (name, type).
func (s *Selector) modelMatch(f facts, keep bool, why *[]string) bool {
	if len(s.globs) > 0 {
		i := slices.IndexFunc(s.globs, func(g *regexp.Regexp) bool { return g.MatchString(f.name) })
		if i < 0 {
			return false
		}
		*why = append(*why, fmt.Sprintf("name matches %q", s.Names[i]))
	}
	if s.re != nil {
		if !wholeMatch(s.re, f.name) {
			return false
		}
		*why = append(*why, fmt.Sprintf("name matches /%s/", s.NameRegex))
	}
	if len(s.types) > 0 {
		switch {
		case f.typ == "" && keep:
			*why = append(*why, fmt.Sprintf("type %q not recognised, so kept on doubt", f.rawType))
		case !s.types[f.typ]:
			return false
		default:
			*why = append(*why, "type "+f.typ)
		}
	}
	return true
}

// hasItemConds reports conditions on the item itself (age, rank), which
// for versions need their details.
func (s *Selector) hasItemConds() bool {
	return s.olderThan > 0 || s.newerThan > 0 || s.Newest > 0 || s.ExceptNewest > 0
}

// itemMatch checks the age and rank conditions. Unknown facts match a keep
// selection and never a delete one: nothing is deleted on doubt.
func (s *Selector) itemMatch(f facts, count int, now time.Time, keep bool, why *[]string) bool {
	day := f.created.UTC().Format(time.DateOnly)
	if s.olderThan > 0 {
		switch {
		case f.created.IsZero():
			if !keep {
				return false
			}
			*why = append(*why, "creation time unknown, so kept on doubt")
		case !f.created.Before(now.Add(-s.olderThan)):
			return false
		default:
			*why = append(*why, fmt.Sprintf("created %s, more than %s ago", day, s.OlderThan))
		}
	}
	if s.newerThan > 0 {
		switch {
		case f.created.IsZero():
			if !keep {
				return false
			}
			*why = append(*why, "creation time unknown, so kept on doubt")
		case !f.created.After(now.Add(-s.newerThan)):
			return false
		default:
			*why = append(*why, fmt.Sprintf("created %s, within %s", day, s.NewerThan))
		}
	}
	if s.Newest > 0 || s.ExceptNewest > 0 {
		switch {
		case f.rank == 0:
			if !keep {
				return false
			}
			*why = append(*why, "rank among its model's versions unknown, so kept on doubt")
		case s.Newest > 0 && f.rank > s.Newest, s.ExceptNewest > 0 && f.rank <= s.ExceptNewest:
			return false
		case s.Newest > 0:
			*why = append(*why, fmt.Sprintf("%s newest of %d, among the %d newest", ordinal(f.rank), count, s.Newest))
		default:
			*why = append(*why, fmt.Sprintf("%s newest of %d, beyond the %d newest", ordinal(f.rank), count, s.ExceptNewest))
		}
	}
	return true
}

// first returns the reason of the first selection matching, or "".
func first(ss []Selector, what string, f facts, count int, now time.Time) string {
	keep := what == "keep"
	for i := range ss {
		var why []string
		if ss[i].modelMatch(f, keep, &why) && ss[i].itemMatch(f, count, now, keep, &why) {
			return fmt.Sprintf("%s #%d (line %d): %s", what, i+1, ss[i].Line, strings.Join(why, "; "))
		}
	}
	return ""
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

func modelFacts(m *inventory.Model) facts {
	t, _ := canonicalType(m.Type)
	return facts{name: m.Name, typ: t, rawType: m.Type, created: m.Created}
}

// NeedsDetail reports whether planning r needs m's version details (their
// creation times and ranks): only for version rules, and only when a
// delete selection that matches the model could match one of its versions
// and a condition on versions decides which. Bounds known from the listing
// spare the call: versions are never older than their model, and a model
// with N versions or fewer has none beyond its N newest. r must be compiled
// (FromYAML and Rule.Compile do it).
func NeedsDetail(r *Rule, m *inventory.Model, now time.Time) bool {
	if r.Kind != modelid.KindVersion || len(m.Versions) == 0 {
		return false
	}
	f := modelFacts(m)
	count := len(m.Versions)
	involved := false
	for i := range r.Keep {
		k := &r.Keep[i]
		var why []string
		if !k.modelMatch(f, true, &why) {
			continue
		}
		onlyNewest := k.olderThan == 0 && k.newerThan == 0 && k.ExceptNewest == 0
		if !k.hasItemConds() || (onlyNewest && k.Newest >= count) {
			return false // kept whatever the details say
		}
		involved = true
	}
	may := false
	for i := range r.Delete {
		d := &r.Delete[i]
		var why []string
		if !d.modelMatch(f, false, &why) {
			continue
		}
		if d.ExceptNewest > 0 && count <= d.ExceptNewest {
			continue
		}
		if d.olderThan > 0 && !m.Created.IsZero() && !m.Created.Before(now.Add(-d.olderThan)) {
			continue
		}
		may = true
		involved = involved || d.hasItemConds()
	}
	return may && involved
}

// Evaluate is the pure part of planning: it decides, for the rule r over
// snap at now, every model or version's fate. details holds the versions of
// the models NeedsDetail named, by am- ID (a model missing there is judged
// on its listing alone, where unknown facts never delete). The limit is
// applied; Inventory, DetailCalls and Vanished are the caller's to fill.
func Evaluate(r *Rule, snap *inventory.Snapshot, details map[string][]inventory.Version, now time.Time) (Plan, error) {
	e, err := newEvaluation(r, snap.Taken, snap.Services, now)
	if err != nil {
		return Plan{}, err
	}
	for i := range snap.Models {
		e.add(&snap.Models[i], details[snap.Models[i].ID])
	}
	return e.finish(), nil
}

// evaluation is Evaluate one model at a time, for plans that stream the
// listing: it keeps the services and the plan's items, not the models.
type evaluation struct {
	r      *Rule
	p      Plan // its Items are the chunk being filled
	usedBy map[string][]*inventory.Service
	now    time.Time
	// full are the filled chunks of items, joined by finish: a plan of a
	// large account has 100,000s of items, and a slice grown by append
	// holds up to a quarter more than it uses and, while it grows, both
	// its old and new arrays.
	full [][]Item
	n    int // items in full
}

// itemChunk is how many items a chunk holds (about 700 KiB).
const itemChunk = 4096

func newEvaluation(r *Rule, taken time.Time, services []inventory.Service, now time.Time) (*evaluation, error) {
	if err := r.ready(); err != nil {
		return nil, err
	}
	return &evaluation{r: r, now: now, usedBy: usedBy(services),
		p: Plan{Rule: r.Name, Kind: r.Kind, At: now, Inventory: taken, Protection: !r.DeleteInUse,
			Limit: r.Limit.withDefaults(), Items: []Item{}}}, nil
}

// usedBy maps every model and version ID a service runs to the services
// that run it, as Snapshot.UsedBy does, but pointing into services rather
// than copying one (120 bytes) per ID: an account of 1,000,000 models may
// have 40,000 of them.
func usedBy(services []inventory.Service) map[string][]*inventory.Service {
	out := map[string][]*inventory.Service{}
	for i := range services {
		svc := &services[i]
		for _, id := range svc.Models {
			out[id] = append(out[id], svc)
		}
		for _, id := range svc.Versions {
			out[id] = append(out[id], svc)
		}
	}
	return out
}

// add decides m (or its versions, with detail when NeedsDetail named it).
func (e *evaluation) add(m *inventory.Model, detail []inventory.Version) {
	n := len(e.p.Items)
	if e.r.Kind == modelid.KindModel {
		e.p.model(e.r, m, e.usedBy, e.now)
	} else {
		e.p.versions(e.r, m, detail, e.usedBy, e.now)
	}
	// Reasons and types repeat (a rule has few selections, a year few
	// days, an account few model types): a plan of a large account holds
	// each text once.
	for i := n; i < len(e.p.Items); i++ {
		it := &e.p.Items[i]
		it.Reason, it.Type = unique.Make(it.Reason).Value(), unique.Make(it.Type).Value()
	}
	if len(e.p.Items) >= itemChunk {
		e.full = append(e.full, e.p.Items)
		e.n += len(e.p.Items)
		e.p.Items = make([]Item, 0, itemChunk)
	}
}

// finish applies the limit and returns the plan, its items in one slice.
func (e *evaluation) finish() Plan {
	e.p.Blocked = e.p.Limit.check(e.r.Kind, e.p.Totals)
	if len(e.full) > 0 {
		items := make([]Item, 0, e.n+len(e.p.Items))
		for i, c := range e.full {
			items = append(items, c...)
			e.full[i] = nil
		}
		e.p.Items, e.full, e.n = append(items, e.p.Items...), nil, 0
	}
	return e.p
}

func (p *Plan) model(r *Rule, m *inventory.Model, usedBy map[string][]*inventory.Service, now time.Time) {
	p.Totals.Considered++
	f := modelFacts(m)
	del := first(r.Delete, "delete", f, 0, now)
	if del == "" {
		return
	}
	it := Item{ID: m.ID, IntID: m.IntID, Name: m.Name, Type: m.Type, Created: m.Created}
	svcs := slices.Clone(usedBy[m.ID])
	for _, v := range m.Versions {
		svcs = append(svcs, usedBy[v]...)
	}
	p.decide(r, it, del, first(r.Keep, "keep", f, 0, now), svcs)
}

func (p *Plan) versions(r *Rule, m *inventory.Model, detail []inventory.Version, usedBy map[string][]*inventory.Service, now time.Time) {
	vs := detail
	if vs == nil {
		for _, id := range m.Versions {
			vs = append(vs, inventory.Version{ID: id, Model: m.ID})
		}
	} else {
		vs = rankVersions(vs)
	}
	// A service naming the model but no version may run any of them.
	var whole []*inventory.Service
	for _, s := range usedBy[m.ID] {
		if len(s.Versions) == 0 {
			whole = append(whole, s)
		}
	}
	for i, v := range vs {
		p.Totals.Considered++
		f := modelFacts(m)
		f.created = v.Created
		if detail != nil {
			f.rank = i + 1
		}
		del := first(r.Delete, "delete", f, len(vs), now)
		if del == "" {
			continue
		}
		it := Item{ID: v.ID, IntID: v.IntID, Model: m.ID, Name: m.Name, Type: m.Type, Version: v.Version,
			Created: v.Created, Rank: f.rank}
		p.decide(r, it, del, first(r.Keep, "keep", f, len(vs), now), slices.Concat(usedBy[v.ID], whole))
	}
}

// decide applies precedence: keep wins, then protection, then delete.
func (p *Plan) decide(r *Rule, it Item, del, keep string, svcs []*inventory.Service) {
	p.Totals.Matched++
	switch {
	case keep != "":
		it.Action, it.Reason = ActionKeep, "kept by "+keep+" (selected by "+del+")"
		p.Totals.Keep++
	case len(svcs) > 0 && !r.DeleteInUse:
		it.Action = ActionProtect
		for _, s := range svcs {
			it.Services = append(it.Services, s.Label())
		}
		it.Services = slices.Compact(slices.Sorted(slices.Values(it.Services)))
		it.Reason = "used by " + strings.Join(it.Services, ", ") + " (selected by " + del + ")"
		p.Totals.Protect++
	default:
		it.Action, it.Reason = ActionDelete, del
		if len(r.Keep) > 0 {
			it.Reason += "; no keep selection matched"
		}
		if len(svcs) > 0 {
			it.Reason += "; in use, but the rule has protect_in_use: false"
		}
		p.Totals.Delete++
	}
	p.Items = append(p.Items, it)
}

// rankVersions orders versions newest first: by creation time (an unknown
// time counts as newest, so it is never the one deleted), then version
// number, then ID.
func rankVersions(vs []inventory.Version) []inventory.Version {
	out := slices.Clone(vs)
	slices.SortStableFunc(out, func(a, b inventory.Version) int {
		if a.Created.IsZero() != b.Created.IsZero() {
			if a.Created.IsZero() {
				return -1
			}
			return 1
		}
		an, _ := strconv.Atoi(a.Version)
		bn, _ := strconv.Atoi(b.Version)
		return cmp.Or(b.Created.Compare(a.Created), cmp.Compare(bn, an), strings.Compare(b.ID, a.ID))
	})
	return out
}

// check returns why a plan with totals t is over the limit, or "".
func (l Limit) check(k modelid.Kind, t Totals) string {
	l = l.withDefaults()
	if t.Delete > l.Count {
		return fmt.Sprintf("would delete %d %ss, over the rule's limit of %d (limit: count)", t.Delete, k, l.Count)
	}
	if t.Considered > 0 {
		if share := float64(t.Delete) / float64(t.Considered); share > l.Share {
			return fmt.Sprintf("would delete %d of the %d %ss considered (%.1f%%), over the rule's limit of %s (limit: share)",
				t.Delete, t.Considered, k, share*100, pct(l.Share))
		}
	}
	return ""
}

// wholeMatch reports whether re (compiled leftmost-longest) matches all of
// name: if any match spans the name it starts at 0, the leftmost place, and
// the longest match from there is the whole name.
func wholeMatch(re *regexp.Regexp, name string) bool {
	loc := re.FindStringIndex(name)
	return loc != nil && loc[0] == 0 && loc[1] == len(name)
}
