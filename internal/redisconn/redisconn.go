// Package redisconn opens the one go-redis client a qfpurge process shares
// between Asynq and its own keys: from a REDIS_URL (Connect, Open), or an
// in-memory Redis for the demo (Embedded). Errors and logs show URLs only
// through Redact.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// ErrBadURL is wrapped by Open's errors: the URL itself is wrong (a usage
// mistake), as opposed to a Redis that cannot be reached.
var ErrBadURL = errors.New("bad Redis URL")

// Connect opens rawURL (see Open) and checks that Redis answers within five
// seconds; the error names the URL with its password masked.
func Connect(ctx context.Context, rawURL string) (redis.UniversalClient, error) {
	rdb, err := Open(rawURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s is not reachable: %w", Redact(rawURL), err)
	}
	return rdb, nil
}

// Embedded starts an in-memory Redis (miniredis) on addr, for the demo and
// for trying qfpurge where no Redis is installed. What it holds is lost when
// the process stops. close stops the client and the server.
func Embedded(addr string, log *slog.Logger) (rdb redis.UniversalClient, listening string, close func(), err error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, "", nil, fmt.Errorf("start the embedded Redis on %s: %w (is a Redis already running there? then set REDIS_URL=redis://%s, or pick another --embedded-addr)",
			addr, err, addr)
	}
	// Asynq's heartbeats and leases rely on expiring keys.
	m.ClockTTL(true)
	log.Warn("using an embedded in-memory Redis on " + m.Addr() + ": queued deletions are LOST when this process stops; set REDIS_URL for real use")
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return c, m.Addr(), func() { c.Close(); m.Close() }, nil
}

// Open parses a Redis URL and returns a client. Accepted forms:
//
//	redis://[user:password@]host:port[/db]         one server
//	rediss://...                                   one server over TLS
//	redis+sentinel://[user:pass@]s1:26379?master_name=mymaster&addr=s2:26379[&sentinel_password=…]
//	redis+cluster://[user:pass@]n1:6379?addr=n2:6379   (rediss+cluster:// for TLS)
//
// go-redis does the parsing, so the username, TLS and its query options
// (dial_timeout, pool_size, ...) are kept.
func Open(rawURL string) (redis.UniversalClient, error) {
	if !strings.Contains(rawURL, "://") {
		return nil, fmt.Errorf("%w: REDIS_URL %s has no scheme: write it as redis://host:port[/db] (or rediss://, redis+sentinel://, redis+cluster://)", ErrBadURL, Redact(rawURL))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: REDIS_URL %s is not a URL", ErrBadURL, Redact(rawURL))
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("%w: REDIS_URL %s: %w", ErrBadURL, Redact(rawURL), err)
		}
		return redis.NewClient(o), nil
	case "redis+sentinel", "rediss+sentinel":
		o, err := failoverOptions(u)
		if err != nil {
			return nil, fmt.Errorf("%w: REDIS_URL %s: %w", ErrBadURL, Redact(rawURL), err)
		}
		if o.MasterName == "" {
			return nil, fmt.Errorf("%w: REDIS_URL %s: a sentinel URL needs ?master_name=", ErrBadURL, Redact(rawURL))
		}
		return redis.NewFailoverClient(o), nil
	case "redis+cluster", "rediss+cluster":
		o, err := redis.ParseClusterURL(strings.Replace(rawURL, "+cluster", "", 1))
		if err != nil {
			return nil, fmt.Errorf("%w: REDIS_URL %s: %w", ErrBadURL, Redact(rawURL), err)
		}
		return redis.NewClusterClient(o), nil
	}
	return nil, fmt.Errorf("%w: REDIS_URL %s: unknown scheme %q (want redis, rediss, redis+sentinel or redis+cluster)", ErrBadURL, Redact(rawURL), u.Scheme)
}

// hostPort matches a bare host:port, the one scheme-less value worth echoing.
var hostPort = regexp.MustCompile(`^[A-Za-z0-9.-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}$`)

// Redact renders a Redis URL for logs and errors: the password, query
// passwords and a user name given without a password (most likely a password
// in the wrong slot) are masked. A value that is not a URL is only echoed
// when it is a bare host:port: anything else may be a password.
func Redact(rawURL string) string {
	if !strings.Contains(rawURL, "://") {
		if hostPort.MatchString(rawURL) {
			return `"` + rawURL + `"`
		}
		return "(a value that is not a URL, not shown)"
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(a URL that cannot be parsed, not shown)"
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); !hasPass && u.User.Username() != "" {
			u.User = url.User("xxxxx")
		}
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

// failoverOptions parses a redis+sentinel URL. go-redis gives a failover
// URL's user:password to the sentinels; here, as in every other form, they
// are the data nodes' credentials, and the sentinels' own come from
// sentinel_username and sentinel_password.
func failoverOptions(u *url.URL) (*redis.FailoverOptions, error) {
	v := *u
	v.Scheme = strings.TrimSuffix(u.Scheme, "+sentinel")
	q := v.Query()
	sUser, sPass := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	v.RawQuery = q.Encode()
	o, err := redis.ParseFailoverURL(v.String())
	if err != nil {
		return nil, err
	}
	if o.Username == "" && o.Password == "" {
		o.Username, o.Password = o.SentinelUsername, o.SentinelPassword
	}
	o.SentinelUsername, o.SentinelPassword = sUser, sPass
	return o, nil
}
