// Package qfclient builds the Qianfan client of the commands that only read
// (enqueue --dry-run, rules preview and rules run, which enqueues for the
// workers and deletes nothing itself).
package qfclient

import (
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// The environment variables of the two key pairs.
const (
	EnvAccessKey     = "QIANFAN_ACCESS_KEY"
	EnvSecretKey     = "QIANFAN_SECRET_KEY"
	EnvReadAccessKey = "QIANFAN_READ_ACCESS_KEY"
	EnvReadSecretKey = "QIANFAN_READ_SECRET_KEY"
)

// Reader returns a client for reading, under the fleet's budget for the
// key that signs (qps calls per second, shared through rdb with the
// workers; 0 for no cap). With a read-only pair set, the client holds only
// it: a deletion fails before any call, so what it serves cannot delete.
// Without one, the full pair signs, as it does everything then. what names
// the command in the usage error when neither pair is set.
func Reader(rdb redis.UniversalClient, getenv func(string) string, baseURL string, qps float64, what string) (*qianfan.Client, error) {
	if err := Check(getenv, what); err != nil {
		return nil, err
	}
	rak, rsk := getenv(EnvReadAccessKey), getenv(EnvReadSecretKey)
	ak, sk := getenv(EnvAccessKey), getenv(EnvSecretKey)
	signer := ak
	if rak != "" {
		signer = rak
	}
	var l qianfan.Limiter
	if qps > 0 {
		fl, err := fleet.NewLimiter(rdb, fleet.LimitConfig{QPS: qps, Key: fleet.LimitKey(baseURL, signer)})
		if err != nil {
			return nil, err
		}
		l = fl
	}
	opts := []qianfan.Option{qianfan.WithBaseURL(baseURL)}
	var qc *qianfan.Client
	var err error
	if rak != "" {
		qc, err = qianfan.New(qianfan.Credentials{}, append(opts, qianfan.WithReadKey(qianfan.Credentials{AccessKey: rak, SecretKey: rsk}, l))...)
	} else {
		qc, err = qianfan.New(qianfan.Credentials{AccessKey: ak, SecretKey: sk}, append(opts, qianfan.WithLimiter(l))...)
	}
	if err != nil {
		return nil, cli.Usage(err)
	}
	return qc, nil
}

// Check reports, before anything is opened, a usage error when neither
// pair is set in full.
func Check(getenv func(string) string, what string) error {
	rak, rsk := getenv(EnvReadAccessKey), getenv(EnvReadSecretKey)
	if (rak == "") != (rsk == "") {
		return cli.Usagef("%s and %s go together: set both (a read-only pair) or neither", EnvReadAccessKey, EnvReadSecretKey)
	}
	if rak == "" && (getenv(EnvAccessKey) == "" || getenv(EnvSecretKey) == "") {
		return cli.Usagef("%s reads the account: set %s and %s (a read-only pair is enough), or %s and %s",
			what, EnvReadAccessKey, EnvReadSecretKey, EnvAccessKey, EnvSecretKey)
	}
	return nil
}
