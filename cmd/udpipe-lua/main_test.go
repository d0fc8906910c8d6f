package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	bin   string // the udpipe-lua binary, built once by TestMain
	lua51 string // the reference interpreter, "" when it is not installed
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "udpipe-lua-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "udpipe-lua")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic("building udpipe-lua: " + err.Error())
	}
	lua51, _ = exec.LookPath("lua5.1")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needLua51 fails the test when the reference interpreter is missing: the
// host is checked against it, so skipping would hide a broken set-up.
func needLua51(t *testing.T) {
	t.Helper()
	if lua51 == "" {
		t.Fatal("lua5.1 is not on PATH: these tests compare udpipe-lua with the reference " +
			"interpreter; install it with `apt-get install -y lua5.1` (.ci/run does)")
	}
}

// runOpts is how a command is started: its folder, stdin and extra
// environment.
type runOpts struct {
	dir   string
	stdin string
	env   []string
}

// result is what a finished command left.
type result struct {
	stdout, stderr string
	code           int
}

// execute runs prog with args and waits (10 s at most) for it to end. The
// environment is the test's without LUA_INIT and LUA_PATH, plus o.env.
func execute(t *testing.T, prog string, o runOpts, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = o.dir
	cmd.Env = append(cleanEnv(), o.env...)
	cmd.Stdin = strings.NewReader(o.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%s %q: %v\nstderr: %s", prog, args, err, r.stderr)
	}
	return r
}

// cleanEnv is the environment without the variables lua reads.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LUA_INIT=") && !strings.HasPrefix(kv, "LUA_PATH=") {
			env = append(env, kv)
		}
	}
	return env
}

// writeFiles creates files (name → content) under dir, folders included.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// argsScript prints the arg table (the interpreter's own entry as
// <interpreter>, since it differs between the two programs) and `...`.
const argsScript = `
local lo = 0
while arg[lo - 1] ~= nil do lo = lo - 1 end
for i = lo, #arg do
  print(i, i == lo and "<interpreter>" or arg[i])
end
print("...", select('#', ...), ...)
`

// TestArgLayoutMatchesLua51 runs the same command lines through lua5.1 and
// udpipe-lua and compares what the script sees: arg at every index, `...`,
// and the effect of -e, -l, -v, --, - and joined option arguments.
func TestArgLayoutMatchesLua51(t *testing.T) {
	needLua51(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"args.lua": argsScript,
		"mod.lua":  `print("mod loaded", ...) return {}`,
	})
	cases := []struct {
		args  []string
		stdin string
	}{
		{args: []string{"args.lua", "a", "b"}},
		{args: []string{"args.lua"}},
		{args: []string{"args.lua", "", "two words", "-e"}},
		{args: []string{"-e", "x=1", "args.lua", "a"}},
		{args: []string{"-ex=1", "args.lua"}},
		{args: []string{"-e", "print(arg, x)", "-e", "x = 2", "-e", "print(x)"}},
		{args: []string{"-l", "mod", "args.lua", "a"}},
		{args: []string{"-lmod", "-e", "print(package.loaded.mod ~= nil)"}},
		{args: []string{"-v", "args.lua", "z"}},
		{args: []string{"--", "args.lua", "q"}},
		{args: []string{"-", "p", "q"}, stdin: argsScript},
		{args: []string{"-e", "print(1)", "-", "p"}, stdin: argsScript},
		{args: []string{}, stdin: "print(arg, select('#', ...))"},
		{args: []string{"-v"}, stdin: "print('stdin ran')"},
		{args: []string{"-e", "print(2)"}, stdin: "print('stdin ran')"},
		{args: []string{"-lmod"}, stdin: "print('stdin ran')"},
		{args: []string{"--"}, stdin: "print('stdin ran')"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			o := runOpts{dir: dir, stdin: c.stdin}
			want := execute(t, lua51, o, c.args...)
			got := execute(t, bin, o, c.args...)
			if got.stdout != want.stdout || got.code != want.code {
				t.Errorf("udpipe-lua %q:\n%s(exit %d)\nlua5.1:\n%s(exit %d)\nstderr: %s",
					c.args, got.stdout, got.code, want.stdout, want.code, got.stderr)
			}
		})
	}
}

// TestArgInterpreterEntry checks the entry lua5.1 fills with its own name:
// udpipe-lua puts the path it was started with there.
func TestArgInterpreterEntry(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"s.lua": `print(arg[-1], arg[0], arg[1])`})
	got := execute(t, bin, runOpts{dir: dir}, "s.lua", "x")
	if want := bin + "\ts.lua\tx\n"; got.stdout != want {
		t.Errorf("arg[-1], arg[0], arg[1] = %q, want %q", got.stdout, want)
	}
}

// TestUsageErrors: a bad option or a missing option argument prints the
// usage and exits 1, as lua5.1 does.
func TestUsageErrors(t *testing.T) {
	needLua51(t)
	for _, args := range [][]string{{"-x"}, {"-e"}, {"-l"}, {"-iv"}, {"--x"}} {
		want := execute(t, lua51, runOpts{}, args...)
		got := execute(t, bin, runOpts{}, args...)
		if got.code != 1 || want.code != 1 || !strings.Contains(got.stderr, "usage: udpipe-lua") {
			t.Errorf("%q: exit %d (lua5.1 %d), stderr:\n%s", args, got.code, want.code, got.stderr)
		}
	}
}

// TestVersion: -v prints one line on stderr (as lua 5.1 does) naming the
// program, the gopher-lua release and the language, then goes on.
func TestVersion(t *testing.T) {
	got := execute(t, bin, runOpts{}, "-v", "-e", "print('went on')")
	re := regexp.MustCompile(`^udpipe-lua \S+ \(gopher-lua v1\.1\.2, Lua 5\.1\)\n$`)
	if !re.MatchString(got.stderr) || got.stdout != "went on\n" || got.code != 0 {
		t.Errorf("-v: stdout %q, stderr %q, exit %d", got.stdout, got.stderr, got.code)
	}
}

// TestInteractive feeds the REPL through stdin: '=expr', plain expressions,
// a statement over several lines, an error that does not end the session,
// _PROMPT, and the end of input; and -i after a script.
func TestInteractive(t *testing.T) {
	stdin := strings.Join([]string{
		"print(1+1)",
		"=3*4",
		"2^10",
		"'a', 'b'",
		"for i = 1, 2 do",
		"  print('loop', i)",
		"end",
		"error('oops')",
		"x = = 1",
		"print('after')",
		"_PROMPT = 'P> '",
		"=1",
	}, "\n") + "\n"
	got := execute(t, bin, runOpts{stdin: stdin}, "-i")
	if got.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", got.code, got.stderr)
	}
	for _, want := range []string{"> 2\n", "> 12\n", "> 1024\n", "> a\tb\n",
		">> >> loop\t1\nloop\t2\n", "> after\n", "P> 1\nP> \n"} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, got.stdout)
		}
	}
	if !strings.HasSuffix(got.stdout, "\n") {
		t.Errorf("stdout does not end with a newline: %q", got.stdout)
	}
	for _, want := range []string{"udpipe-lua ", "\nstdin:1: oops\nstack traceback:\n", "\nstdin:1: syntax error near '='\n"} {
		if !strings.Contains(got.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, got.stderr)
		}
	}

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"s.lua": `x = 7 print("script", ...)`})
	got = execute(t, bin, runOpts{dir: dir, stdin: "=x\nprint(io.read())\nread by the script\n"}, "-i", "s.lua", "a")
	if want := "script\ta\n> 7\n> read by the script\n> \n"; got.stdout != want || got.code != 0 {
		t.Errorf("-i s.lua: stdout %q (want %q), exit %d, stderr:\n%s", got.stdout, want, got.code, got.stderr)
	}
}

// TestRuntimeErrorMatchesLua51: an error raised in a script prints
// "udpipe-lua: file:line: message" and the traceback lua5.1 prints, with
// [G] for Go functions where lua has [C]; the exit status is 1.
func TestRuntimeErrorMatchesLua51(t *testing.T) {
	needLua51(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"sub/deep.lua": "local function g() error('boom') end\nlocal function f() g() end\n\nf()\n",
		"nested.lua":   "#!/usr/bin/env udpipe-lua\nlocal t = nil\nprint('before')\nreturn t.x\n",
	})
	// started from dir, so that file names keep the folder as given
	want := execute(t, lua51, runOpts{dir: dir}, "sub/deep.lua")
	got := execute(t, bin, runOpts{dir: dir}, "sub/deep.lua")
	wantErr := strings.ReplaceAll(strings.Replace(want.stderr, lua51+": ", "udpipe-lua: ", 1), "[C]", "[G]")
	if got.code != 1 || want.code != 1 || got.stderr != wantErr {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1, stderr:\n%s", got.code, got.stderr, wantErr)
	}
	if !strings.HasPrefix(got.stderr, "udpipe-lua: sub/deep.lua:1: boom\nstack traceback:\n") {
		t.Errorf("first lines: %q", got.stderr)
	}

	// a runtime error that is not error(): line kept despite the #! line
	got = execute(t, bin, runOpts{dir: dir}, "nested.lua")
	if got.code != 1 || got.stdout != "before\n" ||
		!regexp.MustCompile(`^udpipe-lua: nested\.lua:4: .*\nstack traceback:\n\tnested\.lua:4: in main chunk\n`).MatchString(got.stderr) {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", got.code, got.stdout, got.stderr)
	}

	// error objects as lua 5.1 reports them
	got = execute(t, bin, runOpts{}, "-e", "error({})")
	if got.code != 1 || got.stderr != "udpipe-lua: (error object is not a string)\n" {
		t.Errorf("error({}): exit %d, stderr %q", got.code, got.stderr)
	}
	got = execute(t, bin, runOpts{}, "-e", "error('x', 0)")
	if got.code != 1 || !strings.HasPrefix(got.stderr, "udpipe-lua: x\nstack traceback:\n") {
		t.Errorf("error('x', 0): exit %d, stderr %q", got.code, got.stderr)
	}
}

// TestLoadErrors: a syntax error (in the script, in -e, in a required
// module) and a missing script name the file and line as lua5.1 does, are
// followed by a traceback and exit 1.
func TestLoadErrors(t *testing.T) {
	needLua51(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"bad.lua":    "print('never')\nx = = 1\n",
		"eof.lua":    "if x then\n",
		"reqbad.lua": "require 'bad'\n",
	})
	cases := []struct {
		args      []string
		firstLine string // lua5.1's first line up to its last ':' is the same
	}{
		{[]string{"bad.lua"}, "udpipe-lua: bad.lua:2: syntax error near '='"},
		{[]string{"eof.lua"}, "udpipe-lua: eof.lua:2: syntax error near '<eof>'"},
		{[]string{"-e", "x ="}, "udpipe-lua: (command line):1: syntax error near '<eof>'"},
		{[]string{"missing.lua"}, "udpipe-lua: cannot open missing.lua: No such file or directory"},
		{[]string{"reqbad.lua"}, "udpipe-lua: error loading module 'bad' from file './bad.lua':"},
	}
	for _, c := range cases {
		want := execute(t, lua51, runOpts{dir: dir}, c.args...)
		got := execute(t, bin, runOpts{dir: dir}, c.args...)
		gotFirst, rest, _ := strings.Cut(got.stderr, "\n")
		wantFirst, _, _ := strings.Cut(want.stderr, "\n")
		wantFirst = strings.Replace(wantFirst, lua51+": ", "udpipe-lua: ", 1)
		if got.code != 1 || want.code != 1 || gotFirst != c.firstLine ||
			!strings.Contains(rest, "stack traceback:\n") || got.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s", c.args, got.code, got.stdout, got.stderr)
		}
		// the place of the error (and the message, where gopher-lua words it
		// the same) is what lua5.1 prints
		place := wantFirst[:strings.LastIndex(wantFirst, ":")]
		if !strings.HasPrefix(gotFirst, place) {
			t.Errorf("%q: %q does not start like lua5.1's %q", c.args, gotFirst, wantFirst)
		}
	}
}

// TestRequireBesideScript: a script started from another folder finds the
// modules next to it (name.lua and name/init.lua), and so does -l.
func TestRequireBesideScript(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app/main.lua":     `print(require("helper").name, require("pkg").name, LOADED)`,
		"app/helper.lua":   `return {name = "helper"}`,
		"app/pkg/init.lua": `return {name = "pkg"}`,
		"app/early.lua":    `LOADED = "early"`,
	})
	elsewhere := t.TempDir()
	script := filepath.Join(dir, "app", "main.lua")
	got := execute(t, bin, runOpts{dir: elsewhere}, "-l", "early", script)
	if got.stdout != "helper\tpkg\tearly\n" || got.code != 0 {
		t.Errorf("stdout %q, exit %d, stderr:\n%s", got.stdout, got.code, got.stderr)
	}
	// relative path from the parent folder
	got = execute(t, bin, runOpts{dir: dir}, "app/main.lua")
	if got.stdout != "helper\tpkg\tnil\n" || got.code != 0 {
		t.Errorf("relative: stdout %q, exit %d, stderr:\n%s", got.stdout, got.code, got.stderr)
	}
	// a module that is nowhere: lua's list of the places tried
	got = execute(t, bin, runOpts{dir: elsewhere}, "-e", "require 'nowhere'")
	if got.code != 1 || !strings.Contains(got.stderr, "no field package.preload['nowhere']\n\tno file './nowhere.lua'\n") {
		t.Errorf("missing module: exit %d, stderr:\n%s", got.code, got.stderr)
	}
}

// TestLuaPath: the search order is the script's folder, ./?.lua, then
// LUA_PATH, whose ";;" stands for the default path.
func TestLuaPath(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a/main.lua": `print(require("dup"), require("cwdfirst"), require("onlyb"))
print(package.path)`,
		"a/dup.lua":      `return "a"`,
		"b/dup.lua":      `return "b"`,
		"b/cwdfirst.lua": `return "b"`,
		"b/onlyb.lua":    `return "b"`,
		"c/dup.lua":      `return "c"`,
		"c/cwdfirst.lua": `return "c"`,
	})
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	env := []string{"LUA_PATH=" + b + "/?.lua;;"}
	got := execute(t, bin, runOpts{dir: filepath.Join(dir, "c"), env: env}, filepath.Join(a, "main.lua"))
	lines := strings.Split(got.stdout, "\n")
	if got.code != 0 || len(lines) < 2 || lines[0] != "a\tc\tb" {
		t.Fatalf("stdout %q, exit %d, stderr:\n%s", got.stdout, got.code, got.stderr)
	}
	path := lines[1]
	wantPrefix := a + "/?.lua;" + a + "/?/init.lua;./?.lua;" + b + "/?.lua;"
	if !strings.HasPrefix(path, wantPrefix) || strings.Contains(path, ";;") || !strings.Contains(path, "/?/init.lua") {
		t.Errorf("package.path = %q, want it to start with %q and the default path in place of ;;", path, wantPrefix)
	}

	// LUA_PATH alone, with no script
	got = execute(t, bin, runOpts{dir: dir, env: []string{"LUA_PATH=" + b + "/?.lua"}}, "-e", "print(require('onlyb'))")
	if got.stdout != "b\n" || got.code != 0 {
		t.Errorf("-e with LUA_PATH: stdout %q, exit %d, stderr:\n%s", got.stdout, got.code, got.stderr)
	}
}

// TestOsExit: os.exit sets the status (true/false as in Lua 5.2) and
// flushes a buffered io.stdout first.
func TestOsExit(t *testing.T) {
	cases := []struct {
		code string
		want int
	}{{"", 0}, {"3", 3}, {"true", 0}, {"false", 1}}
	for _, c := range cases {
		stat := fmt.Sprintf("io.stdout:setvbuf('full') io.write('flushed') os.exit(%s) print('not reached')", c.code)
		got := execute(t, bin, runOpts{}, "-e", stat)
		if got.code != c.want || got.stdout != "flushed" {
			t.Errorf("os.exit(%s): exit %d, stdout %q, stderr:\n%s", c.code, got.code, got.stdout, got.stderr)
		}
	}
}

// TestSocketModule: socket.gettime is the wall clock with sub-millisecond
// steps; socket.sleep waits (loose bounds), returns at once for
// non-positive times and rejects what is not a number.
func TestSocketModule(t *testing.T) {
	script := `
require 'socket'                       -- LuaSocket style: sets the global
local s = require 'socket'
print("same", rawequal(s, socket))
print("now", string.format("%.6f", socket.gettime()))
local best = 1
for _ = 1, 20 do
  local a = socket.gettime()
  local b = socket.gettime()
  while b == a do b = socket.gettime() end
  if b - a < best then best = b - a end
end
print("step", string.format("%.9f", best))
local t0 = socket.gettime()
socket.sleep(0.05)
print("slept", string.format("%.6f", socket.gettime() - t0))
t0 = socket.gettime()
socket.sleep(0) socket.sleep(-1) socket.sleep(0/0)
print("zero", string.format("%.6f", socket.gettime() - t0))
print("string", pcall(socket.sleep, "0.001"))
print("bad", pcall(socket.sleep, "soon"))
print("none", pcall(socket.sleep))
`
	before := float64(time.Now().UnixNano()) / 1e9
	got := execute(t, bin, runOpts{}, "-e", script)
	if got.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", got.code, got.stderr)
	}
	values := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(got.stdout), "\n") {
		k, v, _ := strings.Cut(line, "\t")
		values[k] = v
	}
	number := func(k string) float64 {
		f, err := strconv.ParseFloat(values[k], 64)
		if err != nil {
			t.Fatalf("%s: %q in\n%s", k, values[k], got.stdout)
		}
		return f
	}
	if values["same"] != "true" {
		t.Errorf("require 'socket' did not set the global socket")
	}
	if now := number("now"); now < before-1 || now > before+5 {
		t.Errorf("gettime() = %f, wall clock %f", now, before)
	}
	if step := number("step"); step <= 0 || step >= 0.001 {
		t.Errorf("smallest gettime() step %g s, want sub-millisecond", step)
	}
	if slept := number("slept"); slept < 0.05 || slept >= 2 {
		t.Errorf("sleep(0.05) took %f s", slept)
	}
	if zero := number("zero"); zero >= 0.5 {
		t.Errorf("sleep(0), sleep(-1), sleep(nan) took %f s", zero)
	}
	if values["string"] != "true" {
		t.Errorf("sleep('0.001') = %q, want true (numeric strings are numbers)", values["string"])
	}
	for _, k := range []string{"bad", "none"} {
		if !strings.HasPrefix(values[k], "false\t") || !strings.Contains(values[k], "number expected") {
			t.Errorf("sleep with %s argument: %q, want a 'number expected' error", k, values[k])
		}
	}
}

// started is a udpipe-lua process whose stdout is read line by line.
type started struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *bytes.Buffer
}

// start runs udpipe-lua with args in the background; stdin stays open
// until the process ends.
func start(t *testing.T, dir string, args ...string) *started {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &started{cmd: cmd, lines: make(chan string, 100), stderr: &bytes.Buffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		stdin.Close()
	})
	go func() {
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				if line != "" {
					p.lines <- line
				}
				close(p.lines)
				return
			}
			p.lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	return p
}

// waitLine waits (5 s at most) for a line of stdout equal to want.
func (p *started) waitLine(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("stdout ended before %q; stderr:\n%s", want, p.stderr)
			}
			if line == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %q on stdout after 5 s; stderr:\n%s", want, p.stderr)
		}
	}
}

// wait waits (5 s at most) for the process to end and returns its status.
func (p *started) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5 s after the signal; stderr:\n%s", p.stderr)
		return -1
	}
}

// TestSignals: SIGINT and SIGTERM stop a script waiting in socket.sleep
// with status 130 and 143 and one short line, no traceback; a second signal
// ends even a pure Lua busy loop; a signal at the interactive prompt ends
// the session.
func TestSignals(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"sleep.lua": "local socket = require 'socket'\nprint('ready')\nwhile true do socket.sleep(0.01) end\n",
		"busy.lua":  "print('ready')\nwhile true do end\n",
	})
	cases := []struct {
		name    string
		args    []string
		signals []syscall.Signal
		want    int
	}{
		{"SIGINT", []string{"sleep.lua"}, []syscall.Signal{syscall.SIGINT}, 130},
		{"SIGTERM", []string{"sleep.lua"}, []syscall.Signal{syscall.SIGTERM}, 143},
		{"busy loop, two SIGINT", []string{"busy.lua"}, []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, 130},
		{"prompt", []string{"-i", "-e", "print('ready')"}, []syscall.Signal{syscall.SIGTERM}, 143},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, dir, c.args...)
			p.waitLine(t, "ready")
			for _, sig := range c.signals {
				time.Sleep(100 * time.Millisecond) // let the prompt or loop start
				if err := p.cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
			}
			if code := p.wait(t); code != c.want {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, c.want, p.stderr)
			}
			if strings.Contains(p.stderr.String(), "traceback") {
				t.Errorf("traceback printed on a signal:\n%s", p.stderr)
			}
			if len(c.signals) == 1 && !strings.Contains(p.stderr.String(), "udpipe-lua: interrupted\n") {
				t.Errorf("stderr lacks the interruption line:\n%s", p.stderr)
			}
		})
	}
}

// serverScript runs a UDPIPE server on 127.0.0.1:arg[1] that prints
// "connected" when a client connects, then ends the way arg[2] says.
const serverScript = `
local UDPIPE = require 'UDPIPE'
local port, mode = tonumber(arg[1]), arg[2]
local server = UDPIPE()
server:start(port, '127.0.0.1')
local connected = false
function server:onConnect(sock) connected = true print('connected') end
while true do
  server:step()
  if connected then
    if mode == 'end' then break
    elseif mode == 'error' then error('failing on purpose')
    elseif mode == 'exit' then os.exit(5)
    end
  end
end
`

// TestConnectionsClosedOnExit: however the script ends (normally, on an
// error, through os.exit, on SIGINT or SIGTERM), the client connected to
// its server gets CLOSE before the process is gone.
func TestConnectionsClosedOnExit(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"server.lua": serverScript})
	cases := []struct {
		name, mode string
		sig        syscall.Signal
		want       int
	}{
		{"normal end", "end", 0, 0},
		{"error", "error", 0, 1},
		{"os.exit", "exit", 0, 5},
		{"SIGINT", "loop", syscall.SIGINT, 130},
		{"SIGTERM", "loop", syscall.SIGTERM, 143},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			port := freeUDPPort(t)
			client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			p := start(t, dir, "server.lua", strconv.Itoa(port), c.mode)
			sc := handshake(t, client, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
			p.waitLine(t, "connected")
			if c.sig != 0 {
				if err := p.cmd.Process.Signal(c.sig); err != nil {
					t.Fatal(err)
				}
			}
			if !awaitClose(client, sc) {
				t.Errorf("no CLOSE from the server; stderr:\n%s", p.stderr)
			}
			if code := p.wait(t); code != c.want {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, c.want, p.stderr)
			}
		})
	}
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// handshake connects client to the UDPIPE server at srv (HELLO, CONNECT,
// re-sent until answered) and returns the address of its data socket.
func handshake(t *testing.T, client *net.UDPConn, srv *net.UDPAddr) *net.UDPAddr {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var sc *net.UDPAddr
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		if sc == nil {
			client.WriteToUDP([]byte("HELLO"), srv)
		} else {
			client.WriteToUDP([]byte("CONNECT"), sc)
		}
		client.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := client.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		msg := string(buf[:n])
		switch {
		case sc == nil && strings.HasPrefix(msg, "CONNECT "):
			i := strings.LastIndex(msg, " ")
			port, err := strconv.Atoi(msg[i+1:])
			if err != nil {
				t.Fatalf("bad reply %q", msg)
			}
			sc = &net.UDPAddr{IP: from.IP, Port: port}
		case sc != nil && msg == "CONNECTED":
			return sc
		}
	}
	t.Fatal("no handshake with the server in 5 s")
	return nil
}

// awaitClose reads from sc until CLOSE comes (answering PING and CLOSE),
// for 5 s at most.
func awaitClose(client *net.UDPConn, sc *net.UDPAddr) bool {
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for {
		n, from, err := client.ReadFromUDP(buf)
		if err != nil {
			return false
		}
		if from.Port != sc.Port {
			continue
		}
		switch string(buf[:n]) {
		case "PING":
			client.WriteToUDP([]byte("PONG"), sc)
		case "CLOSE":
			client.WriteToUDP([]byte("CLOSED"), sc)
			return true
		}
	}
}
