package main

import (
	"testing"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// TestProtectAccount: the purged models are the account's first half, in
// both ID forms, and the in-use set is what the services and the unfinished
// batch tasks name: some purged models are in use, most are not, and the
// same seed makes the same account.
func TestProtectAccount(t *testing.T) {
	c := protectConfig{IDs: 2000, Services: 200, BatchTasks: 50, Seed: 7}
	inv, ids, inUse := protectAccount(c)
	if len(inv.Models) != 2*c.IDs || len(inv.Services) != c.Services || len(inv.BatchTasks) != c.BatchTasks {
		t.Fatalf("account: %d models, %d services, %d tasks", len(inv.Models), len(inv.Services), len(inv.BatchTasks))
	}
	if len(ids) != c.IDs {
		t.Fatalf("%d IDs, want %d", len(ids), c.IDs)
	}
	var ints int
	for _, id := range ids {
		if id.Type() == modelid.IDInt {
			ints++
		}
	}
	if ints != c.IDs/2 {
		t.Errorf("%d int IDs of %d", ints, c.IDs)
	}
	// 200 services and about 25 unfinished tasks over 4,000 models: about
	// 110 of the 2,000 purged ones are in use.
	if len(inUse) < 50 || len(inUse) > 200 {
		t.Errorf("%d purged IDs in use", len(inUse))
	}
	// Every in-use key is a purged ID, and a service's model is in use.
	purged := map[string]bool{}
	byStr := map[string]string{}
	for i, id := range ids {
		purged[fakeKey(id)] = true
		byStr[inv.Models[i].IDStr] = fakeKey(id)
	}
	for k := range inUse {
		if !purged[k] {
			t.Errorf("%s is in use but not purged", k)
		}
	}
	for _, s := range inv.Services {
		if k, ok := byStr[s.Model]; ok && !inUse[k] {
			t.Errorf("service %s runs %s (%s), which is not counted in use", s.IDStr, s.Model, k)
		}
	}
	_, ids2, inUse2 := protectAccount(c)
	if len(inUse2) != len(inUse) || ids2[1] != ids[1] {
		t.Error("the same seed made another account")
	}
}
