package qianfan_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

func Example() {
	fake := qianfantest.New(qianfantest.Config{Invalid: qianfantest.InvalidIDs(999)})
	srv := httptest.NewServer(fake)
	defer srv.Close()

	c, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		qianfan.WithBaseURL(srv.URL))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	res, err := c.BatchDeleteModels(ctx, qianfan.IntIDs{585, 586})
	fmt.Println("deleted:", err == nil, "attempts:", res.Attempts, "log_id:", res.LogID)

	_, err = c.BatchDeleteModels(ctx, qianfan.IntIDs{587, 999})
	fmt.Println(qianfan.Classify(err), err)
	fmt.Println("587 deleted", fake.DeleteCount(qianfantest.KindModel, 587), "times")
	// Output:
	// deleted: true attempts: 1 log_id: 2443985832
	// invalid-ids 500001 param invalid (log_id 2443985833)
	// 587 deleted 0 times
}
