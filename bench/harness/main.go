//go:build linux

// Command harness runs the issue 4 benchmarks: an echo through two Lua
// scripts on udpipe-lua against the same echo on raw LuaSocket (PUC Lua 5.1
// and LuaJIT) and a raw Go UDP echo, all on this machine in the same run,
// plus a many-clients run and an idle-CPU check for udpipe-lua.
//
// Run it from the repository root:
//
//	go run ./bench/harness                     # echo + ping-pong, 5 rounds
//	go run ./bench/harness -mode manyclients -clients 2000
//	go run ./bench/harness -mode idle
//
// See bench/README.md for what each mode measures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	flagMode      = flag.String("mode", "both", "echo | pingpong | both | manyclients | idle | all")
	flagRounds    = flag.Int("rounds", 5, "echo/pingpong: rounds; each round runs every variant once, alternating")
	flagDuration  = flag.Duration("duration", 3*time.Second, "echo/pingpong: length of each run")
	flagInflight  = flag.Int("inflight", 32, "echo: messages kept in flight (ping-pong always uses 1)")
	flagVariants  = flag.String("variants", "", "echo/pingpong: comma-separated subset of variants to run (default all)")
	flagConnected = flag.Bool("connected-lua-server", false, "LuaSocket servers connect (setpeername) to their one client: a stricter reference")
	flagClients   = flag.Int("clients", 2000, "manyclients: number of client instances")
	flagMCTimeout = flag.Duration("clients-timeout", 60*time.Second, "manyclients: give up if not all clients are answered by then")
	flagIdle      = flag.Duration("idle", 10*time.Second, "idle: how long the connected pair is measured")
	flagNoInstall = flag.Bool("no-install", false, "never try to apt-get install lua5.1/luajit/lua-socket")
)

// env is what the modes need: where things are and what could be built.
type env struct {
	root      string // repository root
	luaDir    string // bench/lua
	udpipeLua string // built udpipe-lua binary, "" if the build failed
	udpipeErr error  // why udpipe-lua is not available
	rawgo     string // built raw Go echo binary
	rawgoErr  error
	luaOK     map[string]error // interpreter → nil if usable with LuaSocket
}

func main() {
	flag.Parse()
	err := run()
	interrupted := stopping()
	killAll()
	switch {
	case interrupted:
		// The signal handler is finishing up; exit as interrupted, not as
		// a success, whichever of the two gets there first.
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func run() error {
	modes, err := modesFor(*flagMode)
	if err != nil {
		return err
	}
	if *flagRounds < 1 || *flagInflight < 1 || *flagDuration <= 0 || *flagClients < 1 {
		return errors.New("-rounds, -inflight, -duration and -clients must be positive")
	}

	// Ctrl-C or SIGTERM: kill every benchmark process before leaving, so no
	// server is left holding a port or a core.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	var tmp string
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\nharness: %v: stopping all benchmark processes\n", s)
		killAll()
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		os.Exit(130)
	}()

	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err = os.MkdirTemp("", "udpipe-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	raiseFileLimit()
	printHeader()

	e := &env{root: root, luaDir: filepath.Join(root, "bench", "lua")}
	e.build(tmp)
	needLua := false
	for _, m := range modes {
		needLua = needLua || m == "echo" || m == "pingpong"
	}
	if needLua {
		e.checkLua()
	}
	fmt.Println()

	for _, m := range modes {
		if stopping() {
			break
		}
		switch m {
		case "echo":
			e.echo("echo", *flagInflight)
		case "pingpong":
			e.echo("pingpong", 1)
		case "manyclients":
			e.manyClients(*flagClients)
		case "idle":
			e.idle(*flagIdle)
		}
		fmt.Println()
	}
	printLoad("load average at the end:")
	return nil
}

func modesFor(mode string) ([]string, error) {
	switch mode {
	case "echo", "pingpong", "manyclients", "idle":
		return []string{mode}, nil
	case "both":
		return []string{"echo", "pingpong"}, nil
	case "all":
		return []string{"echo", "pingpong", "manyclients", "idle"}, nil
	}
	return nil, fmt.Errorf("unknown -mode %q (echo, pingpong, both, manyclients, idle, all)", mode)
}

// repoRoot finds the module root by walking up from the working directory,
// so the harness works from any folder inside the repository.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/udpipe/udpipe") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the harness inside the udpipe repository (no go.mod for github.com/udpipe/udpipe found)")
		}
		dir = parent
	}
}

// raiseFileLimit lifts the soft open-files limit to the hard limit. Setting
// it explicitly (rather than relying on the Go runtime's own raise) makes
// child processes inherit it: the many-clients run opens a socket per client
// in both processes.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// printHeader describes the machine, since the figures only mean something
// next to the core count and the toolchain.
func printHeader() {
	fmt.Println("udpipe benchmark harness (issue 4)")
	fmt.Printf("cores (nproc):  %d   GOMAXPROCS=%d\n", runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Printf("go version:     %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				fmt.Printf("cpu:            %s\n", strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		fmt.Printf("kernel:         %s\n", strings.TrimSpace(string(b)))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		fmt.Printf("open files:     %d\n", lim.Cur)
	}
	printLoad("load average:  ")
}

// printLoad shows the load average: other work on a 2-core machine moves
// these figures a lot, so a run on a busy machine should say so.
func printLoad(label string) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return
	}
	note := ""
	if l, err := strconv.ParseFloat(f[0], 64); err == nil && l >= 1 {
		note = "   (busy machine: figures may be noisy)"
	}
	fmt.Printf("%s %s %s %s%s\n", label, f[0], f[1], f[2], note)
}

// build compiles udpipe-lua and the raw Go echo. A failure is recorded for
// the variant, not fatal: the other variants still run.
func (e *env) build(tmp string) {
	e.udpipeLua = filepath.Join(tmp, "udpipe-lua")
	if err := goBuild(e.root, e.udpipeLua, "./cmd/udpipe-lua"); err != nil {
		e.udpipeLua, e.udpipeErr = "", fmt.Errorf("building udpipe-lua failed: %w", err)
		fmt.Printf("udpipe-lua:     NOT AVAILABLE: %v\n", indent(e.udpipeErr))
	} else {
		fmt.Printf("udpipe-lua:     built from ./cmd/udpipe-lua\n")
	}
	e.rawgo = filepath.Join(tmp, "rawgo")
	if err := goBuild(e.root, e.rawgo, "./bench/rawgo"); err != nil {
		e.rawgo, e.rawgoErr = "", fmt.Errorf("building raw Go echo failed: %w", err)
		fmt.Printf("raw Go echo:    NOT AVAILABLE: %v\n", indent(e.rawgoErr))
	}
}

func goBuild(root, out, pkg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// luaInterpreters are the LuaSocket reference hosts, by Debian package.
var luaInterpreters = []string{"lua5.1", "luajit"}

// checkLua finds lua5.1 and luajit with LuaSocket; if one is missing it
// installs the Debian packages when running as root, else it explains and
// the variant is skipped.
func (e *env) checkLua() {
	e.luaOK = map[string]error{}
	missing := false
	for _, lua := range luaInterpreters {
		e.luaOK[lua] = probeLua(lua)
		missing = missing || e.luaOK[lua] != nil
	}
	if missing && !*flagNoInstall && os.Geteuid() == 0 {
		fmt.Println("lua:            installing lua5.1 luajit lua-socket with apt-get ...")
		if err := aptInstall("lua5.1", "luajit", "lua-socket"); err != nil {
			fmt.Printf("lua:            apt-get failed: %v\n", indent(err))
		}
		for _, lua := range luaInterpreters {
			e.luaOK[lua] = probeLua(lua)
		}
	}
	for _, lua := range luaInterpreters {
		if err := e.luaOK[lua]; err != nil {
			how := "install the Debian packages lua5.1 luajit lua-socket (as root: apt-get install -y lua5.1 luajit lua-socket)"
			fmt.Printf("%-15s SKIPPED: %v; %s\n", lua+":", err, how)
		} else {
			fmt.Printf("%-15s %s with LuaSocket\n", lua+":", luaVersion(lua))
		}
	}
}

// probeLua checks that the interpreter exists and can load LuaSocket.
func probeLua(lua string) error {
	path, err := exec.LookPath(lua)
	if err != nil {
		return fmt.Errorf("%s not found", lua)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-e", `require("socket")`).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot load LuaSocket: %s", lua, strings.TrimSpace(string(out)))
	}
	return nil
}

func luaVersion(lua string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, lua, "-v").CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return first
}

// aptInstall installs packages, refreshing the package lists once if the
// first attempt fails (a fresh container often has none).
func aptInstall(pkgs ...string) error {
	try := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			return fmt.Errorf("apt-get %s: %v: %s", args[0], err, lines[len(lines)-1])
		}
		return nil
	}
	install := append([]string{"install", "-y"}, pkgs...)
	if err := try(install...); err == nil {
		return nil
	}
	if err := try("update"); err != nil {
		return err
	}
	return try(install...)
}

func indent(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "\n      | ")
}
