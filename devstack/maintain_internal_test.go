package devstack

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A keep of the partitions that fails half made (a full disk, a file
// system without hard links, a kill while it links) is never put back:
// put back at the next start, the half made copy replaced the partitions,
// and every file not yet linked, and every record written since, was gone.
func TestAKeepHalfMadeIsNotPutBack(t *testing.T) {
	dir := t.TempDir()
	part := filepath.Join(dir, "partitions", "state-0")
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0.dat", "100.dat"} {
		if err := os.WriteFile(filepath.Join(part, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := 0
	link = func(from, to string) error {
		if links++; links == 2 {
			return errors.New("no space left on device")
		}
		return os.Link(from, to)
	}
	defer func() { link = os.Link }()
	if err := keepPartitions(dir); err == nil {
		t.Fatal("keep: got nil, want the link's error")
	}
	if err := os.WriteFile(filepath.Join(part, "200.dat"), []byte("after"), 0o644); err != nil { // written since
		t.Fatal(err)
	}
	// The process is killed while it links: what it made is there at the next start.
	if err := os.MkdirAll(filepath.Join(dir, linking, "state-0"), 0o755); err != nil {
		t.Fatal(err)
	}
	restored, err := restoreCompacting(dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(part)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if restored || !slices.Equal(names, []string{"0.dat", "100.dat", "200.dat"}) {
		t.Errorf("restored %t, partition files %v; want nothing put back, the three files there", restored, names)
	}
	for _, left := range []string{compacting, linking, kept} {
		if exists(filepath.Join(dir, left)) {
			t.Errorf("%s left on disk", left)
		}
	}
}

// A compaction needs room for the compacted copies while the links hold
// the partitions' blocks: without it, kfake cuts a copy short and only
// logs it, and dropping the links then lost the records. Short of room,
// the compaction is put off, and nothing is kept.
func TestACompactionShortOfRoomIsPutOff(t *testing.T) {
	dir := t.TempDir()
	part := filepath.Join(dir, "partitions", "state-0")
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(part, "0.dat"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	freeSpace = func(string) (uint64, error) { return 4095, nil }
	defer func() { freeSpace = diskFree }()
	if err := keepPartitions(dir); err == nil {
		t.Error("keep with 4,095 bytes free for 4,096 of partitions: got nil, want the compaction put off")
	}
	for _, left := range []string{compacting, linking, kept} {
		if exists(filepath.Join(dir, left)) {
			t.Errorf("%s left on disk", left)
		}
	}
	freeSpace = func(string) (uint64, error) { return 4096, nil }
	if err := keepPartitions(dir); err != nil || !exists(filepath.Join(dir, compacting, "state-0", "0.dat")) {
		t.Errorf("keep with room: %v, want the partitions kept", err)
	}
}
