package storage_test

import (
	"testing"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/storage"
)

// TestPrefixRange: the bound after a prefix holds every key that starts
// with it and none other, and is valid UTF-8 when the prefix is (D1 hands
// bounds to JavaScript as strings).
func TestPrefixRange(t *testing.T) {
	for _, tc := range []struct {
		prefix     string
		in, out    []string
		wantHiUTF8 bool
	}{
		{"ab", []string{"ab", "ab\xff", "abz"}, []string{"aa", "ac", "b"}, true},
		{"ÿ", []string{"ÿ", "ÿ-a"}, []string{"Ā-b", "中-c", "y"}, true},
		{"a\U0010FFFF", []string{"a\U0010FFFF", "a\U0010FFFFz"}, []string{"b", "a"}, true},
		{"\uD7FF", []string{"\uD7FFx"}, []string{"\uE000"}, true},
		{"a\xff\xff", []string{"a\xff\xff", "a\xff\xffz"}, []string{"b"}, false},
	} {
		lo, hi := storage.PrefixRange(tc.prefix)
		if tc.wantHiUTF8 && !utf8.ValidString(hi) {
			t.Errorf("PrefixRange(%q) hi = %q, not UTF-8", tc.prefix, hi)
		}
		within := func(k string) bool { return k >= lo && (hi == "" || k < hi) }
		for _, k := range tc.in {
			if !within(k) {
				t.Errorf("PrefixRange(%q) = [%q, %q) leaves out %q", tc.prefix, lo, hi, k)
			}
		}
		for _, k := range tc.out {
			if within(k) {
				t.Errorf("PrefixRange(%q) = [%q, %q) takes in %q", tc.prefix, lo, hi, k)
			}
		}
	}
}
