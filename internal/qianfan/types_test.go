package qianfan

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

func TestLenientDecoding(t *testing.T) {
	t.Parallel()
	cst := time.FixedZone("", 8*3600)
	for _, tt := range []struct {
		name, in string
		into     func() any
		want     any
		wantErr  bool
	}{
		{"V1 list item as documented", `{"modelName":"testxyWST","modelId":12648,"modelIdStr":"am-gmptxxxfci","modelType":1,
			"tags":null,"createTime":"2024-01-26T11:31:38+08:00","versionCount":1,"trainType":"x",
			"latestVersionInfo":{"state":"Ready","version":"1","sourceType":"Train","versionId":15001,"versionIdStr":"amv-prjg6zqe1bhb"}}`,
			func() any { return &ModelSummary{} },
			&ModelSummary{ModelID: 12648, ModelIDStr: "am-gmptxxxfci", ModelName: "testxyWST", ModelType: 1,
				CreateTime: time.Date(2024, 1, 26, 11, 31, 38, 0, cst), VersionCount: 1,
				LatestVersion: &VersionSummary{VersionID: 15001, VersionIDStr: "amv-prjg6zqe1bhb", Version: "1", State: "Ready", SourceType: "Train"}},
			false},
		{"numbers as strings, version as number, empty time", `{"modelId":"7","modelType":"0","versionCount":"2","createTime":"",
			"latestVersionInfo":{"versionId":"9","version":3}}`,
			func() any { return &ModelSummary{} },
			&ModelSummary{ModelID: 7, VersionCount: 2, LatestVersion: &VersionSummary{VersionID: 9, Version: "3"}}, false},
		{"time without offset", `{"createTime":"2024-01-26 11:31:38"}`, func() any { return &ModelSummary{} }, nil, true},
		{"int ID that is not a number", `{"modelId":"am-x"}`, func() any { return &ModelSummary{} }, nil, true},
		{"service IDs in any form", `{"serviceId":"123","versionList":[{"aiModelId":"456","aiModelVersionId":789},
			{"aiModelId":"am-a","aiModelVersionId":"amv-b"},{"aiModelId":"","aiModelVersionId":null}]}`,
			func() any { return &ServiceEntry{} },
			&ServiceEntry{ServiceID: modelid.IntID(123), Versions: []ServiceVersion{
				{AIModelID: modelid.IntID(456), AIModelVersionID: modelid.IntID(789)},
				{AIModelID: modelid.StringID("am-a"), AIModelVersionID: modelid.StringID("amv-b")},
				{}}}, false},
		{"V2 model set, modelType text", `{"modelSetId":"am-1","modelType":"Text2Text","modelCount":"2","modelIds":["amv-1","amv-2"],"labels":null}`,
			func() any { return &ModelSet{} },
			&ModelSet{ModelSetID: "am-1", ModelType: "Text2Text", ModelCount: 2, ModelIDs: []string{"amv-1", "amv-2"}}, false},
		{"services in pageInfo shape", `{"serviceList":[{"serviceId":"svco-1"}],"pageInfo":{"isTruncated":true,"nextMarker":"svco-2","maxKeys":1}}`,
			func() any { return &ServicePage{} },
			&ServicePage{Services: []V2Service{{ServiceID: "svco-1"}}, PageInfo: PageInfo{IsTruncated: true, NextMarker: "svco-2", MaxKeys: 1}}, false},
		{"services in flat shape", `{"services":[],"marker":"","isTruncated":false,"nextMarker":""}`,
			func() any { return &ServicePage{} }, &ServicePage{Services: []V2Service{}}, false},
		{"services under an unknown name", `{"svcs":[],"pageInfo":{}}`, func() any { return &ServicePage{} }, nil, true},
		{"services without paging", `{"serviceList":[]}`, func() any { return &ServicePage{} }, nil, true},
		{"services list null", `{"serviceList":null,"pageInfo":{}}`, func() any { return &ServicePage{} }, nil, true},
		{"batch tasks as documented", `{"taskList":[{"taskId":"infer-n509xxxhqq3","name":"eb4-job4","description":"desc",
			"endpoint":"https://aip.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions_pro","modelId":"amv-1",
			"inferenceParams":{"temperature":0.9,"top_p":0.3},"runStatus":"Failed","errorCode":"336003","errorReason":"bad input",
			"inputBosUri":"bos:/b/in","outputBosUri":"bos:/b/out","createTime":"2024-07-01T10:00:00+08:00"}],
			"pageInfo":{"marker":"","maxKeys":10,"isTruncated":true,"nextMarker":"infer-z"}}`,
			func() any { return &BatchTaskPage{} },
			&BatchTaskPage{Tasks: []BatchTask{{TaskID: "infer-n509xxxhqq3", Name: "eb4-job4", Description: "desc",
				Endpoint: "https://aip.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions_pro", ModelID: "amv-1",
				RunStatus: "Failed", ErrorCode: 336003, ErrorReason: "bad input", InputBosURI: "bos:/b/in", OutputBosURI: "bos:/b/out",
				CreateTime: time.Date(2024, 7, 1, 10, 0, 0, 0, cst)}},
				PageInfo: PageInfo{MaxKeys: 10, IsTruncated: true, NextMarker: "infer-z"}}, false},
		{"batch tasks without a list", `{"pageInfo":{}}`, func() any { return &BatchTaskPage{} }, nil, true},
		{"batch tasks list null", `{"taskList":null,"pageInfo":{}}`, func() any { return &BatchTaskPage{} }, nil, true},
		{"batch tasks without paging", `{"taskList":[]}`, func() any { return &BatchTaskPage{} }, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.into()
			err := json.Unmarshal([]byte(tt.in), got)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(modelid.ID{}),
				cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if err := json.Unmarshal([]byte(`{"svcs":[]}`), &ServicePage{}); !errors.Is(err, errShape) {
		t.Errorf("shape error %v does not wrap errShape", err)
	}
}

func TestV2ServiceRefs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		s                V2Service
		models, versions []string
	}{
		{V2Service{ModelSetID: "am-1", ModelID: "amv-2"}, []string{"am-1"}, []string{"amv-2"}},
		{V2Service{ModelSetID: "am-1", ModelID: "am-1"}, []string{"am-1", "am-1"}, nil},
		{V2Service{ModelID: "amv-2"}, nil, []string{"amv-2"}},
		{V2Service{ModelSetID: "weird"}, nil, nil},
	} {
		m, v := tt.s.Refs()
		if !cmp.Equal(m, tt.models) || !cmp.Equal(v, tt.versions) {
			t.Errorf("%+v: Refs = %v %v", tt.s, m, v)
		}
	}
}
