package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		positional []string
		asOf       string
		all        bool
	}{
		{args: []string{"ID", "--as-of", "2026-01-31T23:59:59Z"}, positional: []string{"ID"}, asOf: "2026-01-31T23:59:59Z"},
		{args: []string{"--as-of=T", "ID"}, positional: []string{"ID"}, asOf: "T"},
		{args: []string{"A", "--all", "B", "-as-of", "T", "C"}, positional: []string{"A", "B", "C"}, asOf: "T", all: true},
		{args: []string{"A", "--", "--all", "-x"}, positional: []string{"A", "--all", "-x"}},
		{args: []string{"-", "--all"}, positional: []string{"-"}, all: true},
		{args: nil, positional: []string{}},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		asOf := fs.String("as-of", "", "")
		all := fs.Bool("all", false, "")
		if err := parseArgs(fs, tc.args); err != nil {
			t.Errorf("parseArgs(%q): %v", tc.args, err)
			continue
		}
		if got := fs.Args(); !slices.Equal(got, tc.positional) || *asOf != tc.asOf || *all != tc.all {
			t.Errorf("parseArgs(%q) = %q, as-of %q, all %v; want %q, %q, %v", tc.args, got, *asOf, *all, tc.positional, tc.asOf, tc.all)
		}
	}

	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := parseArgs(fs, []string{"ID", "--nope"}); err == nil {
		t.Error("an unknown flag after an argument was accepted")
	}
}
