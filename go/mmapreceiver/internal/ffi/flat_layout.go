package ffi

/*
#include "otlp_mmap.h"
*/
import "C"

// FlatLayout holds the constants of the flat batch layout as the library's
// header defines them (the collector crate's `flat` module is their source).
// Package flat keeps its own copies, for it is pure Go; its tests compare
// them with these.
var FlatLayout = struct {
	Magic                                                                      uint32
	ModeFlat, ModeOTLP                                                         uint8
	Inline                                                                     uint32
	KindEmpty, KindStr, KindBool, KindInt, KindDouble, KindBytes, KindAnyValue uint8
	ResourceMinBytes, ScopeMinBytes, AttributeMinBytes                         uint32
	SpanMinBytes, LinkMinBytes, LogMinBytes                                    uint32
}{
	Magic:             C.OM_FLAT_MAGIC,
	ModeFlat:          C.OM_FLAT_MODE_FLAT,
	ModeOTLP:          C.OM_FLAT_MODE_OTLP,
	Inline:            C.OM_FLAT_INLINE,
	KindEmpty:         C.OM_FLAT_KIND_EMPTY,
	KindStr:           C.OM_FLAT_KIND_STR,
	KindBool:          C.OM_FLAT_KIND_BOOL,
	KindInt:           C.OM_FLAT_KIND_INT,
	KindDouble:        C.OM_FLAT_KIND_DOUBLE,
	KindBytes:         C.OM_FLAT_KIND_BYTES,
	KindAnyValue:      C.OM_FLAT_KIND_ANY_VALUE,
	ResourceMinBytes:  C.OM_FLAT_RESOURCE_MIN_BYTES,
	ScopeMinBytes:     C.OM_FLAT_SCOPE_MIN_BYTES,
	AttributeMinBytes: C.OM_FLAT_ATTRIBUTE_MIN_BYTES,
	SpanMinBytes:      C.OM_FLAT_SPAN_MIN_BYTES,
	LinkMinBytes:      C.OM_FLAT_LINK_MIN_BYTES,
	LogMinBytes:       C.OM_FLAT_LOG_MIN_BYTES,
}
