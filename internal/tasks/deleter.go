package tasks

import (
	"context"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Deleter is what the handler needs of Qianfan: one V1 delete call for IDs
// of one kind and one type, one V2 delete call for one string ID, a detail
// call that shows an ID exists, and a V1 read that tells whether V1 still
// serves.
type Deleter interface {
	Delete(ctx context.Context, k modelid.Kind, ids []modelid.ID) (qianfan.Result, error)
	DeleteOne(ctx context.Context, k modelid.Kind, id string) (qianfan.Result, error)
	ProbeV1(ctx context.Context) error
	// Describe reports whether Qianfan shows the ID, and its other form when
	// the answer names it. Only an answer that shows the ID counts: an
	// error that may mean "not found" is found=false with a nil error,
	// since Baidu does not document what "not found" looks like; errors that
	// say nothing about the ID (transient, throttled, credentials) are
	// returned.
	Describe(ctx context.Context, k modelid.Kind, id modelid.ID) (found bool, other modelid.ID, err error)
}

// QianfanDeleter is the Deleter on Qianfan's V1 API.
type QianfanDeleter struct{ Client *qianfan.Client }

// Delete calls batchDelete for k with ids.
func (d QianfanDeleter) Delete(ctx context.Context, k modelid.Kind, ids []modelid.ID) (qianfan.Result, error) {
	list := ToQianfan(ids)
	if k == modelid.KindVersion {
		return d.Client.BatchDeleteModelVersions(ctx, list)
	}
	return d.Client.BatchDeleteModels(ctx, list)
}

// DeleteOne calls V2 DeleteModelSet (a model, am-) or DeleteModel (a
// version, amv-).
func (d QianfanDeleter) DeleteOne(ctx context.Context, k modelid.Kind, id string) (qianfan.Result, error) {
	if k == modelid.KindVersion {
		return d.Client.DeleteModel(ctx, id)
	}
	return d.Client.DeleteModelSet(ctx, id)
}

// ProbeV1 reads one page of V1's model list.
func (d QianfanDeleter) ProbeV1(ctx context.Context) error {
	_, _, err := d.Client.ListModels(ctx, qianfan.ModelListRequest{PageNo: 1, PageSize: 1})
	return err
}

// Describe calls modelDetail or modelVersionDetail.
func (d QianfanDeleter) Describe(ctx context.Context, k modelid.Kind, id modelid.ID) (bool, modelid.ID, error) {
	var (
		intID int64
		strID string
		err   error
	)
	if k == modelid.KindVersion {
		var v qianfan.ModelVersion
		v, _, err = d.Client.ModelVersionDetail(ctx, id)
		intID, strID = v.ModelVersionID, v.ModelVersionIDStr
	} else {
		var m qianfan.ModelDetail
		m, _, err = d.Client.ModelDetail(ctx, id)
		intID, strID = m.ModelID, m.ModelIDStr
	}
	if err != nil {
		switch qianfan.Classify(err) {
		case qianfan.ClassInvalidIDs, qianfan.ClassUnknown:
			return false, modelid.ID{}, nil
		}
		return false, modelid.ID{}, err
	}
	if id.Type() == modelid.IDString {
		if intID != 0 {
			return true, modelid.IntID(intID), nil
		}
		return true, modelid.ID{}, nil
	}
	if strID != "" {
		return true, modelid.StringID(strID), nil
	}
	return true, modelid.ID{}, nil
}

// ToQianfan converts IDs of one type to the client's list type.
func ToQianfan(ids []modelid.ID) qianfan.IDs {
	if len(ids) > 0 && ids[0].Type() == modelid.IDString {
		out := make(qianfan.StringIDs, len(ids))
		for i, id := range ids {
			out[i] = id.String()
		}
		return out
	}
	out := make(qianfan.IntIDs, len(ids))
	for i, id := range ids {
		out[i], _ = id.Int()
	}
	return out
}
