package ffi_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/otelcol-mmap/mmapreceiver/internal/ffi"
)

// notInGo lists the OmStats fields the receiver does not read, and why.
var notInGo = map[string]string{
	"finished": "the receiver decides itself when a removed file is drained",
}

// goName is the Go field name of a C field: snake_case to CamelCase, with
// Go's initialisms.
func goName(c string) string {
	var b strings.Builder
	for _, part := range strings.Split(c, "_") {
		switch part {
		case "ids":
			b.WriteString("IDs")
		default:
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// The Go Stats mirror the C OmStats (which a Rust test keeps equal to the
// library's ReaderStats): a counter added to the library cannot be left
// unread by the receiver without this test failing.
func TestStatsMirrorTheHeader(t *testing.T) {
	header, err := os.ReadFile("otlp_mmap.h")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)typedef struct OmStats \{(.*?)\} OmStats;`).FindSubmatch(header)
	if m == nil {
		t.Fatal("no OmStats in the header")
	}
	field := regexp.MustCompile(`(?m)^\s*(?:uint64_t|int32_t)\s+(\w+)(?:\[\d+\])?;`)
	var want []string
	for _, f := range field.FindAllSubmatch(m[1], -1) {
		if _, skip := notInGo[string(f[1])]; !skip {
			want = append(want, goName(string(f[1])))
		}
	}
	if len(want) < 10 {
		t.Fatalf("parsed only %v", want)
	}
	typ := reflect.TypeOf(ffi.Stats{})
	var got []string
	for i := range typ.NumField() {
		got = append(got, typ.Field(i).Name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Go Stats fields %v\ndiffer from the header's OmStats %v", got, want)
	}
}
