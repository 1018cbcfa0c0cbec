// Package redisconn opens the one go-redis client a qfpurge process shares
// between Asynq and its own keys, from a REDIS_URL.
package redisconn

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

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
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %s", Redact(rawURL))
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %s: %w", Redact(rawURL), err)
		}
		return redis.NewClient(o), nil
	case "redis+sentinel", "rediss+sentinel":
		o, err := failoverOptions(u)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %s: %w", Redact(rawURL), err)
		}
		if o.MasterName == "" {
			return nil, fmt.Errorf("REDIS_URL %s: a sentinel URL needs ?master_name=", Redact(rawURL))
		}
		return redis.NewFailoverClient(o), nil
	case "redis+cluster", "rediss+cluster":
		o, err := redis.ParseClusterURL(strings.Replace(rawURL, "+cluster", "", 1))
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %s: %w", Redact(rawURL), err)
		}
		return redis.NewClusterClient(o), nil
	}
	return nil, fmt.Errorf("REDIS_URL %s: unknown scheme %q (want redis, rediss, redis+sentinel or redis+cluster)", Redact(rawURL), u.Scheme)
}

// Redact hides the password of a Redis URL for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
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
