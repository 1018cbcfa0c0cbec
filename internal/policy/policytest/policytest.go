// Package policytest is what rule plans are checked against, in tests and
// in the bench: a made-up account, and the two acceptance rules
// computed the obvious way over the fake's inventory, apart from package
// policy.
package policytest

import (
	"slices"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// Account makes up an account (qianfantest.NewInventory) in which every
// third experiment is marked to keep.
func Account(models, versions, services int, seed int64) *qianfantest.Inventory {
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: models, Versions: versions, Services: services, Seed: seed}, time.Now())
	for i := range inv.Models {
		if strings.HasPrefix(inv.Models[i].Name, "exp-") && i%3 == 0 {
			inv.Models[i].Name += "-keep"
		}
	}
	return inv
}

// CIVersions is "the versions of models named ci-* created more than 30
// days before now, except each model's 3 newest, none a service uses",
// as sorted amv- IDs.
func CIVersions(inv *qianfantest.Inventory, now time.Time) []string {
	used := map[string]bool{}
	for _, s := range inv.Services {
		used[s.Version] = true
	}
	var out []string
	for _, m := range inv.Models {
		if !strings.HasPrefix(m.Name, "ci-") {
			continue
		}
		vs := slices.Clone(m.Versions)
		slices.SortFunc(vs, func(a, b qianfantest.Version) int {
			if c := b.CreateTime.Compare(a.CreateTime); c != 0 {
				return c
			}
			return b.Version - a.Version
		})
		for i, v := range vs {
			if i >= 3 && v.CreateTime.Before(now.Add(-30*24*time.Hour)) && !used[v.IDStr] {
				out = append(out, v.IDStr)
			}
		}
	}
	slices.Sort(out)
	return out
}

// ExpModels is "the models named exp-* created more than 90 days before
// now, unless named *-keep, none a service uses (by the model or any of
// its versions)", as sorted am- IDs.
func ExpModels(inv *qianfantest.Inventory, now time.Time) []string {
	used := map[string]bool{}
	for _, s := range inv.Services {
		used[s.Model], used[s.Version] = true, true
	}
	var out []string
	for _, m := range inv.Models {
		if !strings.HasPrefix(m.Name, "exp-") || strings.HasSuffix(m.Name, "-keep") || !m.CreateTime.Before(now.Add(-90*24*time.Hour)) {
			continue
		}
		inUse := used[m.IDStr]
		for _, v := range m.Versions {
			inUse = inUse || used[v.IDStr]
		}
		if !inUse {
			out = append(out, m.IDStr)
		}
	}
	slices.Sort(out)
	return out
}
