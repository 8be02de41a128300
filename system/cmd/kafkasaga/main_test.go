package main

import "testing"

func TestConsoleURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8084":          "http://localhost:8084/ui/",
		"0.0.0.0:8084":   "http://localhost:8084/ui/",
		"[::]:8084":      "http://localhost:8084/ui/",
		"127.0.0.1:9000": "http://127.0.0.1:9000/ui/",
		"[::1]:9000":     "http://[::1]:9000/ui/",
	} {
		if got := consoleURL(addr); got != want {
			t.Errorf("consoleURL(%q): got %s, want %s", addr, got, want)
		}
	}
}
