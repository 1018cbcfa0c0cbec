package qianfan

import (
	"golang.org/x/sync/errgroup"

	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// ErrIncompleteListing reports a walk that could not list everything (a
// V2 page that says it is truncated but names no next marker, a marker seen
// twice, too many pages). Like any failed walk it means "unknown", never
// "absent".
var ErrIncompleteListing = errors.New("qianfan: listing is incomplete")

// maxWalkPages bounds a walk against a server that pages forever.
const maxWalkPages = 100_000

// ListModels reads one page of the account's models (V1 user/list).
// API: docs/qianfan-api.md
func (c *Client) ListModels(ctx context.Context, req ModelListRequest) (ModelPage, Result, error) {
	req.PageNo = max(req.PageNo, 1)
	req.PageSize = cmp.Or(max(req.PageSize, 0), 100)
	var page ModelPage
	res, err := c.call(ctx, epModelList, req, &page)
	return page, res, err
}

// ModelDetail reads a model and all its versions (V1 modelDetail); id is
// the int or the am- form.
// API: docs/qianfan-api.md
func (c *Client) ModelDetail(ctx context.Context, id modelid.ID) (ModelDetail, Result, error) {
	var d ModelDetail
	res, err := c.call(ctx, epModelDetail, map[string]modelid.ID{"modelId": id}, &d)
	return d, res, err
}

// ModelVersionDetail reads one version (V1 modelVersionDetail); id is the
// int or the amv- form.
// API: docs/qianfan-api.md
func (c *Client) ModelVersionDetail(ctx context.Context, id modelid.ID) (ModelVersion, Result, error) {
	var v ModelVersion
	res, err := c.call(ctx, epModelVersionDetail, map[string]modelid.ID{"modelVersionId": id}, &v)
	return v, res, err
}

// ListServices reads every service, preset and custom (V1 service/list,
// which does not page).
// API: docs/qianfan-api.md
func (c *Client) ListServices(ctx context.Context, req ServiceListRequest) (ServiceList, Result, error) {
	var l ServiceList
	res, err := c.call(ctx, epServiceList, req, &l)
	return l, res, err
}

// DescribeCustomModelSets reads one page of the account's models (V2);
// start with marker "", then follow PageInfo.NextMarker while
// PageInfo.IsTruncated. maxKeys above 100 counts as 100.
// API: docs/qianfan-api.md
func (c *Client) DescribeCustomModelSets(ctx context.Context, marker string, maxKeys int) (ModelSetPage, Result, error) {
	var p ModelSetPage
	res, err := c.call(ctx, epDescribeCustomModelSets, markerRequest(marker, maxKeys), &p)
	return p, res, err
}

// DescribeModelSet reads one model with its version IDs (V2); id is am-.
// API: docs/qianfan-api.md
func (c *Client) DescribeModelSet(ctx context.Context, modelSetID string) (ModelSet, Result, error) {
	var m ModelSet
	res, err := c.call(ctx, epDescribeModelSet, map[string]string{"modelSetId": modelSetID}, &m)
	return m, res, err
}

// DescribeModel reads one model version (V2); id is amv-.
// API: docs/qianfan-api.md
func (c *Client) DescribeModel(ctx context.Context, modelID string) (V2Model, Result, error) {
	var m V2Model
	res, err := c.call(ctx, epDescribeModel, map[string]string{"modelId": modelID}, &m)
	return m, res, err
}

// DescribeServices reads one page of the account's custom services of one
// protocol version (V2), paged like DescribeCustomModelSets. Baidu lists
// only protocolVersion 1 when the field is absent, so it is always sent:
// req.ProtocolVersion 0 means 1. Its result's shape is undocumented; see
// ServicePage for what is accepted.
// API: docs/qianfan-api.md
func (c *Client) DescribeServices(ctx context.Context, req ServicesRequest) (ServicePage, Result, error) {
	req.ProtocolVersion = cmp.Or(req.ProtocolVersion, 1)
	if req.ProtocolVersion != 1 && req.ProtocolVersion != 2 {
		return ServicePage{}, Result{}, fmt.Errorf("qianfan: DescribeServices: protocolVersion %d is neither 1 nor 2", req.ProtocolVersion)
	}
	req.MaxKeys = pageKeys(req.MaxKeys)
	var p ServicePage
	res, err := c.call(ctx, epDescribeServices, req, &p)
	for i := range p.Services {
		p.Services[i].ProtocolVersion = req.ProtocolVersion
	}
	return p, res, err
}

// DescribeBatchInferenceTasks reads one page of the account's batch
// inference tasks (V2), paged like DescribeCustomModelSets; req.RunStatus
// filters by state (none: every state).
// API: docs/qianfan-api.md
func (c *Client) DescribeBatchInferenceTasks(ctx context.Context, req BatchTasksRequest) (BatchTaskPage, Result, error) {
	req.MaxKeys = pageKeys(req.MaxKeys)
	var p BatchTaskPage
	res, err := c.call(ctx, epDescribeBatchTasks, req, &p)
	return p, res, err
}

// DescribeService reads one custom service (V2); id is svco-.
// API: docs/qianfan-api.md
func (c *Client) DescribeService(ctx context.Context, serviceID string) (V2Service, Result, error) {
	var s V2Service
	res, err := c.call(ctx, epDescribeService, map[string]string{"serviceId": serviceID}, &s)
	return s, res, err
}

// pageKeys is the page size asked of a V2 list: 100, the largest, unless
// a smaller one is given.
func pageKeys(maxKeys int) int {
	if maxKeys <= 0 || maxKeys > 100 {
		return 100
	}
	return maxKeys
}

func markerRequest(marker string, maxKeys int) map[string]any {
	req := map[string]any{"maxKeys": pageKeys(maxKeys)}
	if marker != "" {
		req["marker"] = marker
	}
	return req
}

// V1Listing is a whole V1 user/list walk. Offset paging skips or repeats
// items when models are created or deleted during the walk, so the walk
// keeps what it needs to tell: see Consistent.
type V1Listing struct {
	Models     []ModelSummary // distinct by modelId, in the order first seen
	FirstTotal int            // total on the first page
	LastTotal  int            // total on the last page
	Seen       int            // items received, repeats included
	Pages      int
}

// Consistent reports whether the walk was a snapshot: the total never
// moved, nothing was received twice, and every counted model was received.
// Only then does a model's absence from Models mean it is absent.
func (l V1Listing) Consistent() bool {
	return l.FirstTotal == l.LastTotal && l.Seen == len(l.Models) && len(l.Models) == l.LastTotal
}

// WalkModelsV1 lists every model through V1 user/list, page after page from
// req.PageNo (default 1) with req.PageSize (default 100). Any failed page
// fails the walk: the error means "unknown", never "absent". Check
// Consistent before concluding anything from a model's absence.
func (c *Client) WalkModelsV1(ctx context.Context, req ModelListRequest) (V1Listing, error) {
	var l V1Listing
	seen := map[int64]bool{}
	fetched := 0
	for req.PageNo = max(req.PageNo, 1); ; req.PageNo++ {
		if l.Pages >= maxWalkPages {
			return V1Listing{}, fmt.Errorf("%w: more than %d pages", ErrIncompleteListing, maxWalkPages)
		}
		page, _, err := c.ListModels(ctx, req)
		if err != nil {
			return V1Listing{}, fmt.Errorf("qianfan: V1 model list, page %d: %w", req.PageNo, err)
		}
		if l.Pages == 0 {
			l.FirstTotal = page.Total
		}
		l.Pages++
		l.LastTotal = page.Total
		l.Seen += len(page.Items)
		for _, m := range page.Items {
			if !seen[m.ModelID] {
				seen[m.ModelID] = true
				l.Models = append(l.Models, m)
			}
		}
		// The server may cut a large page without saying so: count what
		// came rather than trusting pageSize.
		fetched += len(page.Items)
		if len(page.Items) == 0 || fetched >= page.Total {
			return l, nil
		}
	}
}

// WalkCustomModelSets lists every model through V2 DescribeCustomModelSets,
// following nextMarker while isTruncated. Any failed page fails the walk:
// the error means "unknown", never "absent".
func (c *Client) WalkCustomModelSets(ctx context.Context, maxKeys int) ([]ModelSet, error) {
	all := []ModelSet{}
	err := c.WalkCustomModelSetPages(ctx, maxKeys, func(page []ModelSet) error {
		all = append(all, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// WalkCustomModelSetPages is WalkCustomModelSets handing each page to fn
// (without repeats of earlier pages) instead of holding the whole listing;
// fn's error ends the walk. A failure after some pages still means the
// listing is incomplete.
func (c *Client) WalkCustomModelSetPages(ctx context.Context, maxKeys int, fn func([]ModelSet) error) error {
	return walkMarker(ctx, "V2 model sets", func(marker string) ([]ModelSet, PageInfo, error) {
		p, _, err := c.DescribeCustomModelSets(ctx, marker, maxKeys)
		return p.ModelSets, p.PageInfo, err
	}, func(m ModelSet) string { return m.ModelSetID }, fn)
}

// ServiceProtocolVersions are the values of DescribeServices'
// protocolVersion: services deployed with the V1 calling protocol and with
// V2's. Baidu lists only 1 when the field is absent.
var ServiceProtocolVersions = []int{1, 2}

// WalkServices lists every custom service of both protocol versions, in
// every status, through V2 DescribeServices: one walk per protocol
// version, each following nextMarker while isTruncated. Any failed page
// fails the whole walk: the error means "unknown", never "no services".
// Each service's ProtocolVersion is that of the walk that listed it; a
// service listed by both walks is kept once, with the first.
func (c *Client) WalkServices(ctx context.Context, maxKeys int) ([]V2Service, error) {
	// The protocol versions are walked at once: a fresh in-use view is
	// waited on by every batch, and each walk is a chain of round trips.
	pages := make([][]V2Service, len(ServiceProtocolVersions))
	g, gctx := errgroup.WithContext(ctx)
	for i, pv := range ServiceProtocolVersions {
		g.Go(func() error {
			what := fmt.Sprintf("V2 services (protocolVersion %d)", pv)
			return walkMarker(gctx, what, func(marker string) ([]V2Service, PageInfo, error) {
				p, _, err := c.DescribeServices(gctx, ServicesRequest{Marker: marker, MaxKeys: maxKeys, ProtocolVersion: pv})
				return p.Services, p.PageInfo, err
			}, func(s V2Service) string { return s.ServiceID }, func(page []V2Service) error {
				pages[i] = append(pages[i], page...)
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	all := []V2Service{}
	seen := map[string]bool{}
	for _, ps := range pages {
		for _, s := range ps {
			if !seen[s.ServiceID] {
				seen[s.ServiceID] = true
				all = append(all, s)
			}
		}
	}
	return all, nil
}

// WalkBatchInferenceTasks lists every batch inference task in one of
// runStatus (none: every task) through V2 DescribeBatchInferenceTasks,
// following nextMarker while isTruncated. Any failed page fails the walk.
func (c *Client) WalkBatchInferenceTasks(ctx context.Context, maxKeys int, runStatus ...string) ([]BatchTask, error) {
	all := []BatchTask{}
	err := walkMarker(ctx, "V2 batch inference tasks", func(marker string) ([]BatchTask, PageInfo, error) {
		p, _, err := c.DescribeBatchInferenceTasks(ctx, BatchTasksRequest{Marker: marker, MaxKeys: maxKeys, RunStatus: runStatus})
		return p.Tasks, p.PageInfo, err
	}, func(t BatchTask) string { return t.TaskID }, func(page []BatchTask) error {
		all = append(all, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// walkMarker follows a V2 marker listing to its end, handing each page to
// fn without the items earlier pages held.
func walkMarker[T any](ctx context.Context, what string, page func(marker string) ([]T, PageInfo, error), id func(T) string, fn func([]T) error) error {
	var seenItem idSet
	seenMarker := map[string]bool{"": true}
	marker := ""
	for n := 1; ; n++ {
		if n > maxWalkPages {
			return fmt.Errorf("%w: %s: more than %d pages", ErrIncompleteListing, what, maxWalkPages)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		items, info, err := page(marker)
		if err != nil {
			return fmt.Errorf("qianfan: %s, page %d: %w", what, n, err)
		}
		fresh := items[:0:0]
		for _, it := range items {
			if seenItem.add(id(it)) {
				fresh = append(fresh, it)
			}
		}
		if err := fn(fresh); err != nil {
			return err
		}
		if !info.IsTruncated {
			return nil
		}
		switch {
		case info.NextMarker == "":
			return fmt.Errorf("%w: %s page %d is truncated but has no nextMarker", ErrIncompleteListing, what, n)
		case seenMarker[info.NextMarker]:
			return fmt.Errorf("%w: %s page %d repeats marker %q", ErrIncompleteListing, what, n, info.NextMarker)
		}
		seenMarker[info.NextMarker] = true
		marker = info.NextMarker
	}
}
