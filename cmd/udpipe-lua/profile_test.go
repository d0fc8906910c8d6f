package main

import (
	"os"
	"path/filepath"
	"testing"
)

// UDPIPE_CPUPROFILE makes udpipe-lua write a CPU profile of the run, in
// pprof's format (gzip-compressed).
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"busy.lua": `local x = 0 for i = 1, 2e6 do x = x + i end print(x > 0)`})
	prof := filepath.Join(dir, "cpu.prof")
	got := execute(t, bin, runOpts{dir: dir, env: []string{"UDPIPE_CPUPROFILE=" + prof}}, "busy.lua")
	if got.code != 0 || got.stdout != "true\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", got.code, got.stdout, got.stderr)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatalf("no profile written: %v", err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("the profile is not gzip-compressed pprof data (%d bytes)", len(b))
	}
}
