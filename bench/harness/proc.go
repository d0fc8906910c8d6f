//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one benchmark process (a server or a client). Its stdout is split
// into lines and handed over on a channel, because the harness synchronises
// on lines such as READY, CONNECTED and RESULT; stdout and stderr are also
// kept (the tail) to explain a failure.
type child struct {
	name  string
	cmd   *exec.Cmd
	lines chan string
	out   *tail
	done  chan struct{} // closed once the process has exited
	err   error         // result of Wait, valid after done
}

// children holds every running child so that all of them can be killed when
// the harness is interrupted: no benchmark process may outlive the harness.
// Once stopping is set no new child may start: the signal handler kills
// everything while the benchmark loop may be about to start the next run.
var children = struct {
	sync.Mutex
	m        map[*child]bool
	stopping bool
}{m: map[*child]bool{}}

// start runs argv as its own process group, so that stopping it also stops
// anything it might have spawned.
func start(name string, argv []string) (*child, error) {
	c := &child{
		name:  name,
		lines: make(chan string, 4096),
		out:   &tail{max: 8 << 10},
		done:  make(chan struct{}),
	}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Stdout = &lineWriter{lines: c.lines, tail: c.out}
	c.cmd.Stderr = c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Wait returns at most this long after the process exits even if
	// something still holds its output pipes open.
	c.cmd.WaitDelay = 2 * time.Second

	children.Lock()
	defer children.Unlock()
	if children.stopping {
		return nil, fmt.Errorf("%s: harness is stopping", name)
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	children.m[c] = true
	go func() {
		c.err = c.cmd.Wait()
		children.Lock()
		delete(children.m, c)
		children.Unlock()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitLine returns the first stdout line that starts with prefix. It fails
// if the process exits first or nothing comes within timeout.
func (c *child) waitLine(prefix string, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l := <-c.lines:
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-c.done:
			// The output is fully copied once Wait has returned: look at
			// what is still queued before giving up.
			for {
				select {
				case l := <-c.lines:
					if strings.HasPrefix(l, prefix) {
						return l, nil
					}
				default:
					return "", c.failure(fmt.Sprintf("exited (%v) before printing %s", c.err, prefix))
				}
			}
		case <-timer.C:
			return "", c.failure(fmt.Sprintf("no %s line within %v", prefix, timeout))
		}
	}
}

// wait waits for the process to exit by itself, and kills it after timeout.
func (c *child) wait(timeout time.Duration) error {
	select {
	case <-c.done:
		if c.err != nil {
			return c.failure(fmt.Sprintf("exited: %v", c.err))
		}
		return nil
	case <-time.After(timeout):
		c.kill()
		return c.failure(fmt.Sprintf("still running after %v; killed", timeout))
	}
}

// stop ends the process: SIGTERM first (udpipe-lua then closes its
// connections properly), SIGKILL if it is still there after a grace period.
func (c *child) stop() {
	if c.exited() {
		return
	}
	syscall.Kill(-c.pid(), syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
		c.kill()
	}
}

// kill sends SIGKILL to the process group and waits for the exit.
func (c *child) kill() {
	syscall.Kill(-c.pid(), syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// killAll kills every child still running and lets no new one start (used
// on interrupt and on exit).
func killAll() {
	children.Lock()
	children.stopping = true
	list := make([]*child, 0, len(children.m))
	for c := range children.m {
		list = append(list, c)
	}
	children.Unlock()
	for _, c := range list {
		syscall.Kill(-c.pid(), syscall.SIGKILL)
	}
}

// stopping reports whether the harness is being interrupted.
func stopping() bool {
	children.Lock()
	defer children.Unlock()
	return children.stopping
}

// failure builds an error that names the process and quotes the end of its
// output, which is where the reason usually is.
func (c *child) failure(what string) error {
	msg := fmt.Sprintf("%s %s", c.name, what)
	if t := strings.TrimSpace(c.out.String()); t != "" {
		lines := strings.Split(t, "\n")
		if len(lines) > 6 {
			lines = lines[len(lines)-6:]
		}
		// Callers print errors through indent, which marks these lines.
		msg += "\n" + strings.Join(lines, "\n")
	}
	return fmt.Errorf("%s", msg)
}

// lineWriter splits a process's stdout into lines for the channel (dropping
// lines if nobody reads them: the harness never needs more than the few it
// waits for) and copies everything to the tail.
type lineWriter struct {
	lines   chan string
	tail    *tail
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.tail.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.partial[:i]), "\r")
		w.partial = w.partial[i+1:]
		select {
		case w.lines <- line:
		default:
		}
	}
	return len(p), nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// parseFields reads the key=value pairs of a RESULT line.
func parseFields(line string) map[string]float64 {
	m := map[string]float64{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			m[k] = x
		}
	}
	return m
}

// procStatus returns a field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cpuTicks returns utime+stime of a process from /proc/<pid>/stat, in clock
// ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces:
	// count fields from after the last ')'. utime and stime are fields 14
	// and 15 of the line, i.e. 11 and 12 after the state field.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	return utime + stime, nil
}
