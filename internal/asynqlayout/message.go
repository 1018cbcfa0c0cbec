package asynqlayout

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Message is the part of Asynq's task message (its protobuf TaskMessage,
// stored under a task hash's "msg") that qfpurge writes: a new task's
// fields. Encode writes what Asynq's client writes for the same task, field
// for field and byte for byte; the package test compares them.
type Message struct {
	Type    string
	Payload []byte
	ID      string
	Queue   string
	Retry   int
	// Timeout is in seconds, Deadline a Unix time in seconds; zero is none.
	Timeout  int64
	Deadline int64
	// Group is the Asynq group of a task waiting for aggregation.
	Group string
	// Retention is in seconds.
	Retention int64
}

// TaskMessage's field numbers (asynq's internal/proto/asynq.proto).
const (
	fieldType      = 1
	fieldPayload   = 2
	fieldID        = 3
	fieldQueue     = 4
	fieldRetry     = 5
	fieldTimeout   = 8
	fieldDeadline  = 9
	fieldRetention = 12
	fieldGroup     = 14
)

// AppendEncode appends m as Asynq encodes it: proto3, fields in number
// order, zero values left out.
func (m *Message) AppendEncode(b []byte) []byte {
	b = appendString(b, fieldType, m.Type)
	if len(m.Payload) > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, m.Payload)
	}
	b = appendString(b, fieldID, m.ID)
	b = appendString(b, fieldQueue, m.Queue)
	// int32 in the proto: negative values are sign-extended to 64 bits.
	b = appendVarint(b, fieldRetry, uint64(int64(int32(m.Retry))))
	b = appendVarint(b, fieldTimeout, uint64(m.Timeout))
	b = appendVarint(b, fieldDeadline, uint64(m.Deadline))
	b = appendVarint(b, fieldRetention, uint64(m.Retention))
	return appendString(b, fieldGroup, m.Group)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// DecodeMessage reads the fields of Message from an encoded task message;
// fields it does not know (retry counts, errors, headers) are skipped.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, fmt.Errorf("task message: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v uint64
		var s []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			s, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return m, fmt.Errorf("task message field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fieldType:
			m.Type = string(s)
		case fieldPayload:
			m.Payload = append([]byte(nil), s...)
		case fieldID:
			m.ID = string(s)
		case fieldQueue:
			m.Queue = string(s)
		case fieldRetry:
			m.Retry = int(int32(v))
		case fieldTimeout:
			m.Timeout = int64(v)
		case fieldDeadline:
			m.Deadline = int64(v)
		case fieldRetention:
			m.Retention = int64(v)
		case fieldGroup:
			m.Group = string(s)
		}
	}
	if m.Type == "" {
		return m, errors.New("task message without a type")
	}
	return m, nil
}
