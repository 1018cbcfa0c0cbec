package qianfan

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// bce-sdk-go's logger starts its writer goroutine in an init func.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
}
