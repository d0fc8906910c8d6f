//go:build linux

package main

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// variant is one implementation of the echo: a server and a client command.
type variant struct {
	name        string
	unavailable error // set when it cannot run at all (build failed, no Lua)
	server      func(port int, d time.Duration) []string
	client      func(port, inflight int, d time.Duration) []string
}

const (
	nameUDPIPE = "udpipe-lua"
	nameGo     = "raw Go"
)

func luaName(lua string) string { return lua + "+luasocket" }

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// variants lists the echo implementations, udpipe-lua first, in the order
// the issue names them.
func (e *env) variants() []variant {
	p := func(port int) string { return strconv.Itoa(port) }
	script := func(name string) string { return filepath.Join(e.luaDir, name) }
	vs := []variant{{
		name:        nameUDPIPE,
		unavailable: e.udpipeErr,
		server: func(port int, d time.Duration) []string {
			return []string{e.udpipeLua, script("udpipe_echo_server.lua"), p(port), secs(d), "127.0.0.1"}
		},
		client: func(port, inflight int, d time.Duration) []string {
			return []string{e.udpipeLua, script("udpipe_echo_client.lua"), p(port), p(inflight), secs(d), "127.0.0.1"}
		},
	}}
	for _, lua := range luaInterpreters {
		vs = append(vs, variant{
			name:        luaName(lua),
			unavailable: e.luaOK[lua],
			server: func(port int, d time.Duration) []string {
				argv := []string{lua, script("luasocket_echo_server.lua"), p(port), secs(d), "127.0.0.1"}
				if *flagConnected {
					argv = append(argv, "connected")
				}
				return argv
			},
			client: func(port, inflight int, d time.Duration) []string {
				return []string{lua, script("luasocket_echo_client.lua"), p(port), p(inflight), secs(d), "127.0.0.1"}
			},
		})
	}
	vs = append(vs, variant{
		name:        nameGo,
		unavailable: e.rawgoErr,
		server: func(port int, d time.Duration) []string {
			return []string{e.rawgo, "-mode", "server", "-host", "127.0.0.1", "-port", p(port), "-duration", d.String()}
		},
		client: func(port, inflight int, d time.Duration) []string {
			return []string{e.rawgo, "-mode", "client", "-host", "127.0.0.1", "-port", p(port),
				"-inflight", p(inflight), "-duration", d.String()}
		},
	})

	if *flagVariants == "" {
		return vs
	}
	var picked []variant
	for _, want := range strings.Split(*flagVariants, ",") {
		found := false
		for _, v := range vs {
			if variantKey(v.name) == variantKey(want) {
				picked = append(picked, v)
				found = true
			}
		}
		if !found {
			fmt.Printf("-variants: no variant %q (use udpipe-lua, lua5.1, luajit, rawgo)\n", want)
		}
	}
	return picked
}

// variantKey lets -variants name a variant loosely: "lua5.1" for
// "lua5.1+luasocket", "rawgo" or "go" for "raw Go", "udpipe" for
// "udpipe-lua".
func variantKey(name string) string {
	k := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), " ", ""))
	k = strings.TrimSuffix(k, "+luasocket")
	switch k {
	case "go", "rawgo":
		return "rawgo"
	case "udpipe", "udpipe-lua":
		return "udpipe-lua"
	}
	return k
}

// outcome collects the runs of one variant.
type outcome struct {
	results []map[string]float64
	errs    []error
}

// echo runs every available variant once per round, alternating between
// variants inside a round (and starting each round one variant further) so
// that a slow phase of the machine is spread over all of them rather than
// landing on one. Then it prints medians and ratios.
func (e *env) echo(mode string, inflight int) {
	vs := e.variants()
	fmt.Printf("== %s: %d in flight, 64-byte messages, %d rounds x %v per run ==\n",
		mode, inflight, *flagRounds, *flagDuration)
	if len(vs) == 0 {
		fmt.Println("no variant selected (-variants)")
		return
	}
	for _, v := range vs {
		if v.unavailable != nil {
			fmt.Printf("%-18s not run: %s\n", v.name, indent(v.unavailable))
		}
	}

	out := map[string]*outcome{}
	for _, v := range vs {
		out[v.name] = &outcome{}
	}
	for r := 0; r < *flagRounds; r++ {
		for i := range vs {
			v := vs[(r+i)%len(vs)]
			if v.unavailable != nil {
				continue
			}
			o := out[v.name]
			res, warn, err := runPair(v, inflight, *flagDuration)
			if stopping() {
				return // interrupted: the figures would be meaningless
			}
			fmt.Printf("round %d/%d  %-18s ", r+1, *flagRounds, v.name)
			switch {
			case err != nil && len(o.errs) > 0 && o.errs[0].Error() == err.Error():
				fmt.Println("FAILED (same error as before)")
			case err != nil:
				fmt.Printf("FAILED: %s\n", indent(err))
			default:
				fmt.Printf("rtps=%-8.0f p50=%4.0fµs p99=%5.0fµs resent=%.0f\n",
					res["rtps"], res["p50_us"], res["p99_us"], res["resent"])
			}
			if warn != nil {
				fmt.Printf("           warning: %s\n", indent(warn))
			}
			if err != nil {
				o.errs = append(o.errs, err)
			} else {
				o.results = append(o.results, res)
			}
		}
	}

	fmt.Println()
	fmt.Printf("%-18s %5s  %12s  %10s  %10s\n", "variant", "runs", "median rtps", "p50 RTT", "p99 RTT")
	for _, v := range vs {
		o := out[v.name]
		if v.unavailable != nil {
			fmt.Printf("%-18s %5s  not run (see above)\n", v.name, "-")
			continue
		}
		runs := fmt.Sprintf("%d/%d", len(o.results), len(o.results)+len(o.errs))
		if len(o.results) == 0 {
			fmt.Printf("%-18s %5s  no result: %s\n", v.name, runs, firstLine(o.errs[0]))
			continue
		}
		fmt.Printf("%-18s %5s  %12.0f  %8.0fµs  %8.0fµs\n", v.name, runs,
			o.median("rtps"), o.median("p50_us"), o.median("p99_us"))
	}

	// Ratios of udpipe-lua to each reference. Throughput: higher is better.
	// Ping-pong is about latency, so its RTT ratio is printed as well (lower
	// is better). The targets are those of issue 4.
	fmt.Println()
	u := out[nameUDPIPE]
	for _, v := range vs {
		if v.name == nameUDPIPE {
			continue
		}
		ref := out[v.name]
		label := fmt.Sprintf("%s / %s", nameUDPIPE, v.name)
		if u == nil || len(u.results) == 0 || len(ref.results) == 0 {
			fmt.Printf("%-36s = n/a (no result on one side)\n", label)
			continue
		}
		line := fmt.Sprintf("%-36s = %.2fx rtps", label, u.median("rtps")/ref.median("rtps"))
		if mode == "pingpong" {
			line += fmt.Sprintf(", %.2fx p50 RTT, %.2fx p99 RTT",
				u.median("p50_us")/ref.median("p50_us"), u.median("p99_us")/ref.median("p99_us"))
		}
		fmt.Println(line + target(mode, v.name))
	}
	// How the references compare with each other, for context.
	base := out[luaName("lua5.1")]
	for _, v := range vs {
		ref := out[v.name]
		if v.name == nameUDPIPE || v.name == luaName("lua5.1") || base == nil ||
			len(base.results) == 0 || len(ref.results) == 0 {
			continue
		}
		fmt.Printf("%-36s = %.2fx rtps (reference vs reference)\n",
			fmt.Sprintf("%s / %s", v.name, luaName("lua5.1")), ref.median("rtps")/base.median("rtps"))
	}
}

// target names the issue 4 goal for a ratio, so the table reads on its own.
func target(mode, ref string) string {
	switch {
	case mode == "echo" && ref == luaName("lua5.1"):
		return "   (target >= 1.0x)"
	case mode == "echo" && ref == luaName("luajit"):
		return "   (aim >= 1.3x)"
	case mode == "pingpong" && strings.HasSuffix(ref, "+luasocket"):
		return "   (target: p50 RTT <= 1.10x)"
	}
	return ""
}

func (o *outcome) median(key string) float64 {
	xs := make([]float64, 0, len(o.results))
	for _, r := range o.results {
		xs = append(xs, r[key])
	}
	return median(xs)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// runPair runs one server and one client on a fresh port and returns the
// client's RESULT fields. Every wait has a hard limit, and both processes
// are stopped before it returns. A problem that did not spoil the figures
// (the client failing after its RESULT line, say) comes back as warn.
func runPair(v variant, inflight int, d time.Duration) (res map[string]float64, warn, err error) {
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	// The server outlives the client's run by a wide margin (the harness
	// stops it as soon as the client is done); its own deadline only
	// matters if the harness itself is killed.
	srv, err := start(v.name+" server", v.server(port, d+60*time.Second))
	if err != nil {
		return nil, nil, err
	}
	defer srv.stop()
	if _, err := srv.waitLine("READY", 20*time.Second); err != nil {
		return nil, nil, err
	}
	cli, err := start(v.name+" client", v.client(port, inflight, d))
	if err != nil {
		return nil, nil, err
	}
	defer cli.stop()
	line, err := cli.waitLine("RESULT", d+30*time.Second)
	if err != nil {
		return nil, nil, err
	}
	res = parseFields(line)
	if res["count"] == 0 {
		return nil, nil, cli.failure("made no round trip: " + line)
	}
	if err := cli.wait(10 * time.Second); err != nil {
		warn = err
	}
	if srv.exited() {
		warn = srv.failure(fmt.Sprintf("exited during the run (%v)", srv.err))
	}
	return res, warn, nil
}

// freePort asks the kernel for a UDP port that is free right now. Each run
// gets its own port so that late datagrams of one run can never reach the
// next.
func freePort() (int, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
