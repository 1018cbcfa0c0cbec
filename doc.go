// Package qfpurge deletes Baidu Qianfan (千帆) models asynchronously, in
// bulk, safely. This root package holds no code: it documents the layout,
// and its test checks that packages import only from floors below their own
// (see the README's Layout table). Go services import package producer; the
// commands are under cmd/; the machinery is under internal/.
package qfpurge
