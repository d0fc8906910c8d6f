// Command udpipe-lua runs Lua 5.1 scripts with the UDPIPE library built in.
//
// It behaves like the stand-alone `lua` 5.1 interpreter:
//
//	udpipe-lua [options] [script [args]]
//
//	-e stat  execute string 'stat'
//	-l name  require library 'name'
//	-i       enter interactive mode after executing 'script'
//	-v       show version information
//	--       stop handling options
//	-        execute stdin and stop handling options
//
// The global table arg holds the command line as lua sets it (arg[0] is the
// script, arg[1..n] its arguments, the interpreter and options at negative
// indices) and the script receives its arguments as `...`. require searches
// the script's folder first, then ./?.lua, then LUA_PATH (";;" standing for
// the default path). The modules UDPIPE, UDPIPEVERBOSE and socket are built
// in.
//
// An error prints "udpipe-lua: file:line: message" and a stack traceback to
// stderr and exits with status 1. Whichever way the program ends (normally,
// on an error, through os.exit, or on SIGINT/SIGTERM), every UDPIPE
// connection is closed properly first, so peers see CLOSE. SIGINT exits with
// status 130 and SIGTERM with 143; a second signal exits at once.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/udpipe/udpipe/luabind"
)

// progname prefixes every message the host prints.
const progname = "udpipe-lua"

// gopherLuaModule is the module path of the Lua VM, used for -v.
const gopherLuaModule = "github.com/yuin/gopher-lua"

func main() {
	stopProfile := startProfile()
	code := run(os.Args)
	stopProfile()
	os.Exit(code)
}

// startProfile writes a CPU profile of the run to the file named by
// UDPIPE_CPUPROFILE, if set, for `go tool pprof`. It covers a script that
// ends by itself or by an error, not one that calls os.exit.
func startProfile() (stop func()) {
	path := os.Getenv("UDPIPE_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "udpipe-lua: UDPIPE_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// action is a -e or -l option, run in command-line order before the script.
type action struct {
	flag byte   // 'e' or 'l'
	text string // the statement or the library name
}

// options is the parsed command line, following lua 5.1's collectargs.
type options struct {
	argv        []string // the whole command line, argv[0] included
	actions     []action
	interactive bool // -i
	version     bool // -v (also implied by -i)
	execute     bool // at least one -e
	script      int  // index of the script in argv; 0 when there is none
	scriptStdin bool // the script is "-": read it from stdin
}

// parseArgs reads the command line the way lua 5.1 does. It fails on an
// unknown option or a missing argument to -e or -l.
func parseArgs(argv []string) (*options, error) {
	o := &options{argv: argv}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") { // the script
			o.script = i
			break
		}
		switch {
		case a == "--":
			if i+1 < len(argv) {
				o.script = i + 1
			}
			i = len(argv) // stop handling options
		case a == "-":
			o.script = i
			o.scriptStdin = true
			i = len(argv)
		case a == "-i":
			o.interactive = true
			o.version = true
		case a == "-v":
			o.version = true
		case a[1] == 'e' || a[1] == 'l':
			text := a[2:]
			if text == "" {
				i++
				if i >= len(argv) {
					return nil, fmt.Errorf("'%s' needs argument", a)
				}
				text = argv[i]
			}
			o.execute = o.execute || a[1] == 'e'
			o.actions = append(o.actions, action{flag: a[1], text: text})
		default:
			return nil, fmt.Errorf("unrecognized option '%s'", a)
		}
	}
	return o, nil
}

// scriptPath is the script file named on the command line, or "" when there
// is none or it is stdin.
func (o *options) scriptPath() string {
	if o.script == 0 || o.scriptStdin {
		return ""
	}
	return o.argv[o.script]
}

// scriptArgs are the arguments that follow the script.
func (o *options) scriptArgs() []string {
	if o.script == 0 {
		return nil
	}
	return o.argv[o.script+1:]
}

// printUsage writes lua's usage text to stderr.
func printUsage(problem error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", progname, problem)
	fmt.Fprintf(os.Stderr, `usage: %s [options] [script [args]].
Available options are:
  -e stat  execute string 'stat'
  -l name  require library 'name'
  -i       enter interactive mode after executing 'script'
  -v       show version information
  --       stop handling options
  -        execute stdin and stop handling options
`, progname)
}

// version is the line printed by -v and at the start of interactive mode.
func version() string {
	own, vm := "(devel)", "v1.1.2"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			own = bi.Main.Version
		}
		for _, dep := range bi.Deps {
			if dep.Path == gopherLuaModule && dep.Version != "" {
				vm = dep.Version
			}
		}
	}
	return fmt.Sprintf("%s %s (gopher-lua %s, %s)", progname, own, vm, lua.LuaVersion)
}

// printVersion writes the version line to stderr, as lua 5.1 does.
func printVersion() {
	fmt.Fprintln(os.Stderr, version())
}

// buildArgTable makes the global arg table: argv[script] at index 0, the
// script's arguments at 1..n, the interpreter and options below 0.
func buildArgTable(L *lua.LState, argv []string, script int) *lua.LTable {
	t := L.CreateTable(len(argv)-script-1, script+1)
	for i, a := range argv {
		t.RawSetInt(i-script, lua.LString(a))
	}
	return t
}

// setPackagePath makes require search the script's folder first, then
// ./?.lua, then what package.path already holds (LUA_PATH, with ";;"
// expanded to the default path, or the default path). Repeated entries are
// dropped.
func setPackagePath(L *lua.LState, script string) {
	pkg, ok := L.GetGlobal("package").(*lua.LTable)
	if !ok {
		return
	}
	var entries []string
	if script != "" {
		dir := dirOf(script)
		entries = append(entries, dir+"?.lua", dir+"?/init.lua")
	}
	entries = append(entries, "./?.lua")
	entries = append(entries, strings.Split(lua.LVAsString(pkg.RawGetString("path")), ";")...)
	seen := map[string]bool{}
	kept := entries[:0]
	for _, e := range entries {
		if e != "" && !seen[e] {
			seen[e] = true
			kept = append(kept, e)
		}
	}
	pkg.RawSetString("path", lua.LString(strings.Join(kept, ";")))
}

// dirOf is the folder part of path, "./" for a bare file name, always
// ending with a slash.
func dirOf(path string) string {
	i := strings.LastIndex(path, "/")
	if i < 0 {
		return "./"
	}
	return path[:i+1]
}

// run is the whole program; it returns the exit status.
func run(argv []string) int {
	opts, err := parseArgs(argv)
	if err != nil {
		printUsage(err)
		return 1
	}
	L := lua.NewState(stateOptions)
	h := newHost(L)
	luabind.Install(L)
	if err := luabind.FixPcall(L); err != nil {
		panic(err) // the source is ours: a mistake in it is a bug
	}
	h.install()
	setPackagePath(L, opts.scriptPath())
	h.watchSignals()

	if !h.luaInit() {
		return h.finish(1)
	}
	if opts.version {
		printVersion()
	}
	for _, a := range opts.actions {
		if !h.runAction(a) {
			return h.finish(1)
		}
	}
	if opts.script > 0 && !h.runScript(opts) {
		return h.finish(1)
	}
	switch {
	case opts.interactive:
		h.repl()
	case opts.script == 0 && !opts.execute && !opts.version:
		if isTerminal(os.Stdin) {
			printVersion()
			h.repl()
		} else if !h.runStdin() {
			return h.finish(1)
		}
	}
	return h.finish(0)
}
