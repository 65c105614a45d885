package jwtauth

import (
	"testing"

	"sluice/internal/plugin"
)

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		v      string
		bearer bool
		want   string
		ok     bool
	}{
		{"Bearer abc.def.ghi", true, "abc.def.ghi", true},
		{"bearer   abc", true, "abc", true},
		{"BEARER abc ", true, "abc", true},
		{"Basic dXNlcjpwYXNz", true, "", false},
		{"Bearer ", true, "", false},
		{"abc.def.ghi", true, "", false},
		{"abc.def.ghi", false, "abc.def.ghi", true},
		{"Bearer abc", false, "abc", true},
	} {
		got, ok := bearerToken([]byte(tc.v), tc.bearer)
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("bearerToken(%q, %v) = %q %v, want %q %v", tc.v, tc.bearer, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCookies(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string // Cookie fields left after removing "jwt"
		val  string
	}{
		{[]string{"a=1; jwt=T; b=2"}, []string{"a=1; b=2"}, "T"},
		{[]string{"jwt=T; b=2"}, []string{"b=2"}, "T"},
		{[]string{"a=1;jwt=T"}, []string{"a=1"}, "T"},
		{[]string{"a=1;jwt=T;b=2"}, []string{"a=1;b=2"}, "T"},
		{[]string{"jwt=T"}, nil, "T"},
		{[]string{"a=1", "jwt=T; c=3"}, []string{"a=1", "c=3"}, "T"},
		{[]string{"xjwt=1; jwtx=2"}, []string{"xjwt=1; jwtx=2"}, ""},
	} {
		var h plugin.Header
		for _, v := range tc.in {
			h.Add("Cookie", v)
		}
		val, _ := cookieValue(&h, "jwt")
		removeCookie(&h, "jwt")
		var got []string
		for _, f := range h.Fields {
			got = append(got, string(f.Value))
		}
		if string(val) != tc.val || len(got) != len(tc.want) {
			t.Errorf("%q: value %q, left %q; want %q, %q", tc.in, val, got, tc.val, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: left %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}
