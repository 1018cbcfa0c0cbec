package qianfan

import (
	"errors"
	"strings"
	"testing"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

const readSecret = "read-secret-must-not-leak"

// TestReadKeySignsReadsFullKeyDeletes: with a read pair, every read is
// signed by it and waits on its own limiter; the full key signs only
// deletions, on the full key's limiter.
func TestReadKeySignsReadsFullKeyDeletes(t *testing.T) {
	t.Parallel()
	full, read := &countingLimiter{}, &countingLimiter{}
	b, inv := setupInventory(t, qianfantest.Generate{Models: 4, Versions: 2, Services: 2, BatchTasks: 2, Seed: 21},
		qianfantest.Config{Credentials: map[string]string{"ak": testSecret, "rak": readSecret}}, nil,
		WithLimiter(full), WithReadKey(Credentials{"rak", readSecret}, read))
	b.fake.SetPermission("rak", qianfantest.PermRead)
	ctx := t.Context()
	if !b.client.HasReadKey() {
		t.Fatal("HasReadKey false")
	}
	m := inv.Models
	if _, err := b.client.WalkCustomModelSets(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.WalkModelsV1(ctx, ModelListRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.client.ModelDetail(ctx, modelid.IntID(m[0].ID)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.client.DescribeModelSet(ctx, m[1].IDStr); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.WalkServices(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.WalkBatchInferenceTasks(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.BatchDeleteModels(ctx, IntIDs{m[0].ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.DeleteModelSet(ctx, m[1].IDStr); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.DeleteModel(ctx, m[2].Versions[0].IDStr); err != nil {
		t.Fatal(err)
	}
	st := b.fake.Stats()
	if k := st.Keys["ak"]; k.Reads != 0 || k.Deletes != 3 {
		t.Errorf("full key: %+v, want 0 reads and 3 deletes", k)
	}
	if k := st.Keys["rak"]; k.Reads == 0 || k.Deletes != 0 || k.Denied != 0 {
		t.Errorf("read key: %+v, want reads only", k)
	}
	if int(full.n.Load()) != 3 || int(read.n.Load()) != st.Keys["rak"].Reads {
		t.Errorf("limiters: full waited %d (want 3), read %d (want %d)", full.n.Load(), read.n.Load(), st.Keys["rak"].Reads)
	}
}

// TestReadOnlyClientCannotDelete: a client holding only the read pair
// refuses deletions before any call.
func TestReadOnlyClientCannotDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, qianfantest.Config{Credentials: map[string]string{"ak": testSecret, "rak": readSecret}}, nil)
	c, err := New(Credentials{}, WithBaseURL(b.srv.URL), WithReadKey(Credentials{"rak", readSecret}))
	if err != nil {
		t.Fatal(err)
	}
	for name, del := range map[string]func() error{
		"batchDelete":    func() error { _, err := c.BatchDeleteModels(t.Context(), IntIDs{1}); return err },
		"version delete": func() error { _, err := c.BatchDeleteModelVersions(t.Context(), StringIDs{"amv-x"}); return err },
		"DeleteModelSet": func() error { _, err := c.DeleteModelSet(t.Context(), "am-x"); return err },
		"DeleteModel":    func() error { _, err := c.DeleteModel(t.Context(), "amv-x"); return err },
	} {
		if err := del(); !errors.Is(err, ErrNoDeleteKey) {
			t.Errorf("%s: %v, want ErrNoDeleteKey", name, err)
		}
	}
	if st := b.fake.Stats(); st.Deletes != 0 {
		t.Errorf("%d delete calls reached the fake", st.Deletes)
	}
	for _, bad := range []struct {
		full, read Credentials
	}{
		{Credentials{"ak", testSecret}, Credentials{"ak", readSecret}}, // the same key twice
		{Credentials{}, Credentials{"rak", ""}},
		{Credentials{"ak", ""}, Credentials{"rak", readSecret}},
	} {
		if _, err := New(bad.full, WithReadKey(bad.read)); err == nil || strings.Contains(err.Error(), readSecret) {
			t.Errorf("New(%v, read %v): %v", bad.full, bad.read, err)
		}
	}
}

// TestRefusedReadNamesTheReadKey: a read refused under the read pair says
// which key to check; a delete refused under the full key does not.
func TestRefusedReadNamesTheReadKey(t *testing.T) {
	t.Parallel()
	b, inv := setupInventory(t, qianfantest.Generate{Models: 2, Seed: 22},
		qianfantest.Config{Credentials: map[string]string{"ak": testSecret, "rak": readSecret}}, nil,
		WithReadKey(Credentials{"rak", readSecret}))
	b.fake.SetPermission("rak", qianfantest.PermNone)
	_, err := b.client.WalkCustomModelSets(t.Context(), 0)
	var e *Error
	if !errors.As(err, &e) || !e.ReadKey || e.Credential() != CredentialNoPermission ||
		!strings.Contains(e.CredentialText(), "QIANFAN_READ_ACCESS_KEY") || !strings.Contains(err.Error(), "read-only key") {
		t.Errorf("refused read: %v; %q", err, CredentialTextOf(err))
	}
	b.fake.Revoke("rak")
	_, err = b.client.WalkCustomModelSets(t.Context(), 0)
	if !strings.Contains(CredentialTextOf(err), "QIANFAN_READ_ACCESS_KEY") {
		t.Errorf("revoked read key: %q", CredentialTextOf(err))
	}
	b.fake.SetPermission("ak", qianfantest.PermRead)
	_, err = b.client.DeleteModelSet(t.Context(), inv.Models[0].IDStr)
	if !errors.As(err, &e) || e.ReadKey || strings.Contains(CredentialTextOf(err), "READ") || strings.Contains(err.Error(), "read-only key") {
		t.Errorf("refused delete names the read key: %v; %q", err, CredentialTextOf(err))
	}
}
