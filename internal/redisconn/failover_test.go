package redisconn

import (
	"net/url"
	"testing"
)

func TestFailoverCredentials(t *testing.T) {
	for _, tc := range []struct {
		url                            string
		user, pass, sentUser, sentPass string
	}{
		{"redis+sentinel://app:s3cret@s1:26379?master_name=m", "app", "s3cret", "", ""},
		{"redis+sentinel://app:s3cret@s1:26379?master_name=m&sentinel_username=sen&sentinel_password=tin", "app", "s3cret", "sen", "tin"},
		{"redis+sentinel://s1:26379?master_name=m&sentinel_password=tin", "", "", "", "tin"},
	} {
		u, _ := url.Parse(tc.url)
		o, err := failoverOptions(u)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if o.Username != tc.user || o.Password != tc.pass || o.SentinelUsername != tc.sentUser || o.SentinelPassword != tc.sentPass {
			t.Errorf("%s: master %q/%q sentinel %q/%q; want %q/%q and %q/%q", tc.url,
				o.Username, o.Password, o.SentinelUsername, o.SentinelPassword, tc.user, tc.pass, tc.sentUser, tc.sentPass)
		}
		if o.MasterName != "m" {
			t.Errorf("%s: master name %q", tc.url, o.MasterName)
		}
	}
}
