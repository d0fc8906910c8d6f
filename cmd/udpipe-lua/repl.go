package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Default prompts; a script can change them through _PROMPT and _PROMPT2.
const (
	prompt1 = "> "
	prompt2 = ">> "
)

// repl is lua's interactive mode: it reads statements from stdin and runs
// them. A line that starts with '=' is an expression whose values are
// printed, as in lua 5.1; so is a line that is a valid expression on its
// own. A statement left incomplete continues on the next lines. Errors are
// reported without ending the loop; end of input ends it.
func (h *host) repl() {
	in := newLineReader(os.Stdin)
	for {
		fn, msg, ok := h.readChunk(in)
		if !ok {
			break
		}
		if msg != "" {
			h.reportError(lua.LString(msg), false)
			continue
		}
		h.runInteractive(fn)
	}
	fmt.Fprint(os.Stdout, "\n")
}

// runInteractive runs a chunk typed at the prompt and prints what it
// returns with the global print.
func (h *host) runInteractive(fn *lua.LFunction) {
	L := h.L
	base := L.GetTop()
	if obj, ok := h.docall(fn, nil, lua.MultRet); !ok {
		h.reportError(obj, false)
		return
	}
	n := L.GetTop() - base
	if n == 0 {
		return
	}
	results := make([]lua.LValue, n)
	for i := range results {
		results[i] = L.Get(base + 1 + i)
	}
	L.SetTop(base)
	if err := L.CallByParam(lua.P{Fn: L.GetGlobal("print"), NRet: 0, Protect: true}, results...); err != nil {
		msg := err.Error()
		if ae, ok := err.(*lua.ApiError); ok {
			msg = lua.LVAsString(ae.Object)
		}
		fmt.Fprintf(os.Stderr, "error calling 'print' (%s)\n", msg)
	}
}

// readChunk reads one complete chunk from the prompt and compiles it. It
// returns the function, or the syntax error message; ok is false at the end
// of input.
func (h *host) readChunk(in *lineReader) (fn *lua.LFunction, msg string, ok bool) {
	line, ok := h.readLine(in, true)
	if !ok {
		return nil, "", false
	}
	if expr, isExpr := strings.CutPrefix(line, "="); isExpr {
		line = "return " + expr
	} else if fn, err := h.L.Load(strings.NewReader("return "+line), stdinChunkName); err == nil {
		return fn, "", true
	}
	for {
		fn, err := h.L.Load(strings.NewReader(line), stdinChunkName)
		if err == nil {
			return fn, "", true
		}
		if !incomplete(err) {
			return nil, syntaxMessage(err, stdinChunkName, []byte(line)), true
		}
		more, ok := h.readLine(in, false)
		if !ok {
			return nil, "", false
		}
		line += "\n" + more
	}
}

// readLine shows the prompt (_PROMPT or _PROMPT2 if set) and reads a line.
// A signal while waiting ends the program.
func (h *host) readLine(in *lineReader, first bool) (string, bool) {
	name, prompt := "_PROMPT", prompt1
	if !first {
		name, prompt = "_PROMPT2", prompt2
	}
	if p := h.L.GetGlobal(name); isStringy(p) {
		prompt = lua.LVAsString(p)
	}
	fmt.Fprint(os.Stdout, prompt)
	in.req <- struct{}{}
	select {
	case r := <-in.resp:
		return r.line, r.ok
	case <-h.sig.notify:
		fmt.Fprintf(os.Stderr, "\n%s: interrupted\n", progname)
		h.exit(h.sig.code())
		return "", false
	}
}

// lineReader reads stdin one line per request, from a goroutine so that the
// prompt can also wait for signals. It reads byte by byte and never ahead
// of the line asked for, so a statement that reads stdin itself (io.read)
// gets the lines that follow it.
type lineReader struct {
	req  chan struct{}
	resp chan lineResult
}

// lineResult is one line without its newline; ok is false at end of input.
type lineResult struct {
	line string
	ok   bool
}

func newLineReader(r io.Reader) *lineReader {
	in := &lineReader{req: make(chan struct{}), resp: make(chan lineResult)}
	go func() {
		for range in.req {
			in.resp <- readOneLine(r)
		}
	}()
	return in
}

// readOneLine reads up to and including a newline, or to the end of input.
func readOneLine(r io.Reader) lineResult {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return lineResult{string(line), true}
			}
			line = append(line, b[0])
		}
		if err != nil {
			return lineResult{string(line), len(line) > 0}
		}
	}
}
