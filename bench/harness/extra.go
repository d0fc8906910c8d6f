//go:build linux

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// manyClients runs one udpipe-lua server and one udpipe-lua process holding
// n client instances (bench/lua/udpipe_many_clients.lua). It reports how long
// until every client was connected and answered, and the server's memory per
// connection: VmRSS after all are connected minus VmRSS before, over n.
func (e *env) manyClients(n int) {
	fmt.Printf("== manyclients: %d UDPIPE clients in one udpipe-lua process, one server ==\n", n)
	if e.udpipeErr != nil {
		fmt.Printf("not run: %s\n", indent(e.udpipeErr))
		return
	}
	if err := e.runManyClients(n); err != nil {
		fmt.Printf("FAILED: %s\n", indent(err))
	}
}

func (e *env) runManyClients(n int) error {
	const hold = 3 * time.Second // clients stay connected this long after RESULT
	limit := *flagMCTimeout
	port, err := freePort()
	if err != nil {
		return err
	}
	p := strconv.Itoa(port)
	srv, err := start("udpipe-lua server", []string{e.udpipeLua,
		filepath.Join(e.luaDir, "udpipe_echo_server.lua"), p, secs(limit + hold + 60*time.Second), "127.0.0.1"})
	if err != nil {
		return err
	}
	defer srv.stop()
	if _, err := srv.waitLine("READY", 20*time.Second); err != nil {
		return err
	}
	// Let the server settle before taking the baseline.
	time.Sleep(500 * time.Millisecond)
	before, err := procStatus(srv.pid(), "VmRSS")
	if err != nil {
		return err
	}

	cli, err := start("udpipe-lua clients", []string{e.udpipeLua,
		filepath.Join(e.luaDir, "udpipe_many_clients.lua"), p, strconv.Itoa(n), secs(limit), secs(hold), "127.0.0.1"})
	if err != nil {
		return err
	}
	defer cli.stop()
	line, err := cli.waitLine("RESULT", limit+60*time.Second)
	if err != nil {
		return err
	}
	// Measured while the clients hold their connections open.
	time.Sleep(200 * time.Millisecond)
	after, err := procStatus(srv.pid(), "VmRSS")
	if err != nil {
		return fmt.Errorf("server: %w (did it exit?)", err)
	}
	peak, _ := procStatus(srv.pid(), "VmHWM")
	cliRSS, _ := procStatus(cli.pid(), "VmRSS")
	waitErr := cli.wait(hold + 30*time.Second)

	r := parseFields(line)
	fmt.Printf("clients:              %.0f (connected %.0f, answered %.0f, refused %.0f, disconnected %.0f; %.0f open)\n",
		r["clients"], r["connected"], r["answered"], r["maxclients"], r["disconnected"], r["open"])
	fmt.Printf("all connected after:  %s\n", seconds(r["connect_s"]))
	fmt.Printf("all answered after:   %s   (target: 2000 clients within 15 s)\n", seconds(r["all_s"]))
	fmt.Printf("server VmRSS:         %d KiB before, %d KiB with %.0f connections open (peak %d KiB)\n",
		before, after, r["open"], peak)
	// Divided by the connections open while it was measured, so a run in
	// which some clients failed still gives a fair figure.
	if conns := r["open"]; conns > 0 {
		fmt.Printf("server memory/conn:   %.1f KiB   (aim: <= 16 KiB)\n", float64(after-before)/conns)
	}
	fmt.Printf("client process VmRSS: %d KiB\n", cliRSS)
	if waitErr != nil {
		fmt.Printf("warning: %s\n", indent(waitErr))
	}
	return nil
}

func seconds(s float64) string {
	if s < 0 {
		return "never (not all made it)"
	}
	return fmt.Sprintf("%.3f s", s)
}

// idle runs the documented server and client loops (bench/lua/idle_*.lua),
// waits until they are connected, and measures the CPU time (utime+stime
// from /proc/<pid>/stat) each process uses over d while nothing is sent.
func (e *env) idle(d time.Duration) {
	fmt.Printf("== idle: documented server and client loops, connected and idle for %v ==\n", d)
	if e.udpipeErr != nil {
		fmt.Printf("not run: %s\n", indent(e.udpipeErr))
		return
	}
	if err := e.runIdle(d); err != nil {
		fmt.Printf("FAILED: %s\n", indent(err))
	}
}

func (e *env) runIdle(d time.Duration) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p := strconv.Itoa(port)
	// The scripts' own deadlines are a safety net; the harness stops them.
	life := secs(d + 30*time.Second)
	srv, err := start("udpipe-lua idle server", []string{e.udpipeLua,
		filepath.Join(e.luaDir, "idle_server.lua"), p, life, "127.0.0.1"})
	if err != nil {
		return err
	}
	defer srv.stop()
	if _, err := srv.waitLine("READY", 20*time.Second); err != nil {
		return err
	}
	cli, err := start("udpipe-lua idle client", []string{e.udpipeLua,
		filepath.Join(e.luaDir, "idle_client.lua"), p, life, "127.0.0.1"})
	if err != nil {
		return err
	}
	defer cli.stop()
	if _, err := cli.waitLine("CONNECTED", 20*time.Second); err != nil {
		return err
	}
	// Skip the start-up work (loading, the handshake, the first reply).
	time.Sleep(time.Second)

	procs := []*child{srv, cli}
	start0 := make([]int64, len(procs))
	for i, c := range procs {
		if start0[i], err = cpuTicks(c.pid()); err != nil {
			return err
		}
	}
	t0 := time.Now()
	time.Sleep(d)
	wall := time.Since(t0).Seconds()
	tick := clockTicks()
	for i, c := range procs {
		end, err := cpuTicks(c.pid())
		if err != nil || c.exited() {
			return c.failure("exited while idle")
		}
		cpu := float64(end-start0[i]) / tick
		fmt.Printf("%-24s %5.2f %% of a core (%.2f s CPU in %.1f s)   (target <= 2 %%)\n",
			c.name+":", 100*cpu/wall, cpu, wall)
	}
	return nil
}

// clockTicks is the unit of /proc/<pid>/stat times (USER_HZ), 100 on Linux
// in practice; getconf is asked in case this system differs.
func clockTicks() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}
