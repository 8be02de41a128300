package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

func ms(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func mb(n int64) string { return fmt.Sprintf("%.0f", float64(n)/(1<<20)) }

// writeTable writes the results so far as a Markdown table: a row per size
// and process.
func writeTable(w io.Writer, cfg Config, results []result) {
	head := []string{"sagas run before", "process", "RSS / heap MB, each instance"}
	for _, t := range cfg.Sessions {
		head = append(head, fmt.Sprintf("takeover at %s: detection + handover = total (rebalance, restore)", t))
	}
	head = append(head, "survivor after, RSS / heap MB")
	fmt.Fprintf(w, "\n| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	for _, r := range results {
		for _, name := range processes {
			var mem []string
			for i := range cfg.Instances {
				m := r.Memory[fmt.Sprintf("%s-%d", name, i+1)]
				mem = append(mem, mb(m.RSS)+" / "+mb(m.Heap))
			}
			row := []string{fmt.Sprintf("%d", r.Sagas), name, strings.Join(mem, "; ")}
			var after []string
			for _, t := range cfg.Sessions {
				for _, tk := range r.Takeovers {
					if tk.Process == name && tk.Session == t {
						row = append(row, fmt.Sprintf("%s + %s = %s (%s, %s)", ms(tk.Detection), ms(tk.Handover), ms(tk.Total), ms(tk.Rebalance), ms(tk.Restore)))
						after = append(after, mb(tk.After.RSS)+" / "+mb(tk.After.Heap))
					}
				}
			}
			row = append(row, strings.Join(after, "; "))
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
	fmt.Fprintf(w, "\ndevstack (broker and registry) RSS MB:")
	for _, r := range results {
		fmt.Fprintf(w, " %s after %d sagas;", mb(r.Devstack.RSS), r.Sagas)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
}
