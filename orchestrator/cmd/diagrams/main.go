// Command diagrams writes docs/sagas: a page per saga type the orchestrator
// runs, with its diagram and steps, drawn from its definition, and an
// index. It removes the pages of saga types the orchestrator no longer
// runs. `make docs` runs it from the repository's root.
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kafkasaga/kafkasaga/orchestrator/sagadocs"
	"github.com/kafkasaga/kafkasaga/orchestrator/service"
)

func main() {
	dir := flag.String("dir", sagadocs.Dir, "the directory to write the pages to")
	flag.Parse()
	if err := write(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "diagrams:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	pages := sagadocs.Pages(service.Outlines())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if _, ok := pages[filepath.Base(p)]; !ok {
			if err := os.Remove(p); err != nil {
				return err
			}
			fmt.Println("removed", p)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pages)) {
		text, p := pages[name], filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", p, strings.Count(text, "\n"), "lines")
	}
	return nil
}
