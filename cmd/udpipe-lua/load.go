package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// stdinChunkName is the chunk name of code read from stdin, as in lua.
const stdinChunkName = "stdin"

// loadFile compiles the Lua file at path, named by path as given. On
// failure it returns lua's message instead ("cannot open x.lua: ...",
// "x.lua:3: ...").
func (h *host) loadFile(path string) (*lua.LFunction, string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError("open", path, err)
	}
	defer f.Close()
	src, err := io.ReadAll(f)
	if err != nil {
		return nil, fileError("read", path, err)
	}
	return h.loadSource(skipShebang(src), path)
}

// loadStdin compiles what stdin holds, up to its end.
func (h *host) loadStdin() (*lua.LFunction, string) {
	src, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, fileError("read", stdinChunkName, err)
	}
	return h.loadSource(skipShebang(src), stdinChunkName)
}

// loadString compiles a chunk given as text.
func (h *host) loadString(src, name string) (*lua.LFunction, string) {
	return h.loadSource([]byte(src), name)
}

// loadSource compiles src under the chunk name name; a syntax error comes
// back in lua's "name:line: message" form.
func (h *host) loadSource(src []byte, name string) (*lua.LFunction, string) {
	fn, err := h.L.Load(bytes.NewReader(src), name)
	if err != nil {
		return nil, syntaxMessage(err, name, src)
	}
	return fn, ""
}

// skipShebang blanks a first line starting with '#' (as in "#!/usr/bin/env
// udpipe-lua") but keeps its newline, so line numbers stay right.
func skipShebang(src []byte) []byte {
	if len(src) == 0 || src[0] != '#' {
		return src
	}
	if i := bytes.IndexByte(src, '\n'); i >= 0 {
		return src[i:]
	}
	return nil
}

// fileError words a failure to open or read a file as lua does, with the
// system's message capitalised like strerror's.
func fileError(what, path string, err error) string {
	var errno syscall.Errno
	text := err.Error()
	if errors.As(err, &errno) {
		text = errno.Error()
	}
	if text != "" {
		text = strings.ToUpper(text[:1]) + text[1:]
	}
	return fmt.Sprintf("cannot %s %s: %s", what, path, text)
}

// syntaxMessage turns gopher-lua's parse error into lua's form:
// "name:line: message near 'token'". At the end of the input the line is
// the last one and the token '<eof>', as lua reports it.
func syntaxMessage(err error, name string, src []byte) string {
	var perr *parse.Error
	if !errors.As(unwrapAPI(err), &perr) {
		var cerr *lua.CompileError
		if errors.As(unwrapAPI(err), &cerr) {
			return fmt.Sprintf("%s:%d: %s", name, cerr.Line, cerr.Message)
		}
		return strings.TrimSpace(err.Error())
	}
	if perr.Pos.Line == parse.EOF {
		line := bytes.Count(src, []byte("\n")) + 1
		return fmt.Sprintf("%s:%d: %s near '<eof>'", name, line, perr.Message)
	}
	return fmt.Sprintf("%s:%d: %s near '%s'", name, perr.Pos.Line, perr.Message, perr.Token)
}

// unwrapAPI returns the cause of a gopher-lua API error, or err itself.
func unwrapAPI(err error) error {
	if ae, ok := err.(*lua.ApiError); ok && ae.Cause != nil {
		return ae.Cause
	}
	return err
}

// incomplete tells whether a load error only means that the input ended
// too early, so that the interactive mode should read another line.
func incomplete(err error) bool {
	var perr *parse.Error
	return errors.As(unwrapAPI(err), &perr) && perr.Pos.Line == parse.EOF
}

// installLoader replaces the Lua file searcher of require (package.loaders[2])
// with one that reports like lua 5.1: "no file './m.lua'" for each place
// tried, and lua-style syntax errors in the module.
func (h *host) installLoader() {
	L := h.L
	loaders, ok := L.GetField(L.GetGlobal("package"), "loaders").(*lua.LTable)
	if !ok || loaders.Len() < 2 {
		return
	}
	loaders.RawSetInt(2, L.NewFunction(h.luaLoader))
}

// luaLoader finds a module along package.path and compiles it.
func (h *host) luaLoader(L *lua.LState) int {
	name := L.CheckString(1)
	path, ok := L.GetField(L.GetGlobal("package"), "path").(lua.LString)
	if !ok {
		L.RaiseError("'package.path' must be a string")
	}
	base := strings.ReplaceAll(name, ".", "/")
	var tried []string
	for _, pattern := range strings.Split(string(path), ";") {
		if pattern == "" {
			continue
		}
		file := strings.ReplaceAll(pattern, "?", base)
		if !isReadableFile(file) {
			tried = append(tried, fmt.Sprintf("no file '%s'", file))
			continue
		}
		fn, msg := h.loadFile(file)
		if msg != "" {
			L.Error(lua.LString(fmt.Sprintf("error loading module '%s' from file '%s':\n\t%s", name, file, msg)), 0)
		}
		L.Push(fn)
		return 1
	}
	L.Push(lua.LString(strings.Join(tried, "\n\t")))
	return 1
}

// isReadableFile tells whether path is a file that can be opened.
func isReadableFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	return err == nil && !st.IsDir()
}
