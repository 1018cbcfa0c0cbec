package redisconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// opened is what a test can see of a client Open returned.
type opened struct {
	Kind     string // "single", "failover" or "cluster"
	Addrs    []string
	Username string
	Password string
	DB       int
	TLS      bool
}

func inspect(t *testing.T, c redis.UniversalClient) opened {
	t.Helper()
	switch c := c.(type) {
	case *redis.Client:
		o := c.Options()
		kind := "single"
		if o.Addr == "FailoverClient" { // go-redis's marker for a sentinel-backed client
			kind = "failover"
		}
		return opened{Kind: kind, Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLS: o.TLSConfig != nil}
	case *redis.ClusterClient:
		o := c.Options()
		return opened{Kind: "cluster", Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLS: o.TLSConfig != nil}
	}
	t.Fatalf("unexpected client type %T", c)
	return opened{}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		url  string
		want opened
	}{
		{"plain", "redis://localhost:6379", opened{Kind: "single", Addrs: []string{"localhost:6379"}}},
		{"db", "redis://10.0.0.5:6380/3", opened{Kind: "single", Addrs: []string{"10.0.0.5:6380"}, DB: 3}},
		{"password only", "redis://:s3cret@r:6379/0", opened{Kind: "single", Addrs: []string{"r:6379"}, Password: "s3cret"}},
		{"user and password", "redis://app:s3cret@r:6379/1", opened{Kind: "single", Addrs: []string{"r:6379"}, Username: "app", Password: "s3cret", DB: 1}},
		{"tls", "rediss://app:s3cret@r.example:6380", opened{Kind: "single", Addrs: []string{"r.example:6380"}, Username: "app", Password: "s3cret", TLS: true}},
		// The URL's user:password are the data nodes' credentials in every form.
		{"sentinel userinfo is for the data nodes", "redis+sentinel://app:s3cret@s1:26379?master_name=mymaster&addr=s2:26379",
			opened{Kind: "failover", Addrs: []string{"FailoverClient"}, Username: "app", Password: "s3cret"}},
		{"sentinel master credentials", "redis+sentinel://s1:26379?master_name=mymaster&addr=s2:26379&username=app&password=s3cret&db=2",
			opened{Kind: "failover", Addrs: []string{"FailoverClient"}, Username: "app", Password: "s3cret", DB: 2}},
		{"sentinel tls", "rediss+sentinel://s1:26379?master_name=mymaster",
			opened{Kind: "failover", Addrs: []string{"FailoverClient"}, TLS: true}},
		{"cluster", "redis+cluster://app:s3cret@n1:6379?addr=n2:6379&addr=n3:6379",
			opened{Kind: "cluster", Addrs: []string{"n1:6379", "n2:6379", "n3:6379"}, Username: "app", Password: "s3cret"}},
		{"cluster tls", "rediss+cluster://n1:6379", opened{Kind: "cluster", Addrs: []string{"n1:6379"}, TLS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := redisconn.Open(tc.url)
			if err != nil {
				t.Fatalf("Open(%s): %v", redisconn.Redact(tc.url), err)
			}
			defer c.Close()
			if diff := cmp.Diff(tc.want, inspect(t, c)); diff != "" {
				t.Errorf("Open(%s) (-want +got)\n%s", redisconn.Redact(tc.url), diff)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url, wantIn string
	}{
		{"bad scheme", "http://user:s3cret@host:6379", `unknown scheme "http"`},
		{"memcache", "memcache://host", "unknown scheme"},
		{"sentinel without master", "redis+sentinel://:s3cret@s1:26379", "master_name"},
		{"bad db", "redis://:s3cret@host:6379/notanumber", "REDIS_URL"},
		{"unparsable", "redis://:s3cret@[::1", "REDIS_URL"},
		{"no scheme", "127.0.0.1:26379", `"127.0.0.1:26379" has no scheme: write it as redis://`},
		{"a bare password", "s3cret", "has no scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := redisconn.Open(tc.url)
			if err == nil {
				c.Close()
				t.Fatalf("Open(%s) succeeded, want an error", tc.name)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q does not mention %q", err, tc.wantIn)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://:s3cret@r:6379/0", "redis://:xxxxx@r:6379/0"},
		{"rediss://app:s3cret@r:6380", "rediss://app:xxxxx@r:6380"},
		{"redis+sentinel://app:s3cret@s1:26379?master_name=m&sentinel_password=s3cret", "redis+sentinel://app:xxxxx@s1:26379?master_name=m&sentinel_password=xxxxx"},
		{"redis+cluster://n1:6379?addr=n2:6379&password=s3cret", "redis+cluster://n1:6379?addr=n2%3A6379&password=xxxxx"},
		{"redis://:s3cret@[::1", "(a URL that cannot be parsed, not shown)"},
		{"redis://s3cret@r:6379", "redis://xxxxx@r:6379"},
		{"127.0.0.1:26379", `"127.0.0.1:26379"`},
		{"s3cret", "(a value that is not a URL, not shown)"},
	} {
		if got := redisconn.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(redisconn.Redact(tc.in), "s3cret") {
			t.Errorf("Redact(%q) leaks the password", tc.in)
		}
	}
}

// The username reaches a real Redis: an ACL user can connect through a
// redis:// URL with user and password, and a wrong password is refused.
func TestOpenWithACLUser(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Client(t).Do(ctx, "ACL", "SETUSER", "qfpurge", "on", ">s3cret", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	good, err := redisconn.Open("redis://qfpurge:s3cret@" + srv.Addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if got, err := good.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || got != "qfpurge" {
		t.Fatalf("ACL WHOAMI = %q, %v; want qfpurge", got, err)
	}
	bad, err := redisconn.Open("redis://qfpurge:wrong@" + srv.Addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("PING with a wrong password = %v, want WRONGPASS", err)
	}
}
