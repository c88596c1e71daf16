package main

import "testing"

func TestFlagValue(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"--patch", "a.patch"}, "a.patch", true},
		{[]string{"-patch=b"}, "b", true},
		{[]string{"--widen", "--patch=c", "--runs", "2"}, "c", true},
		{[]string{"--patch", "a", "--patch", "d"}, "d", true},
		{[]string{"--patches", "x"}, "", false},
		{[]string{"--runs", "2"}, "", false},
		{[]string{"--runs", "2", "--patch", "e", "--duration", "1m"}, "e", true},
		{[]string{"--", "--patch", "x"}, "", false},
	} {
		got, ok := flagValue(tt.args, "patch")
		if got != tt.want || ok != tt.ok {
			t.Errorf("flagValue(%q) = %q, %v; want %q, %v", tt.args, got, ok, tt.want, tt.ok)
		}
	}
}
