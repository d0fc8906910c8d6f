package engine

import "time"

// timerHeap orders the connections by when their timers are due. Each
// connection has at most one live entry: wake only pushes a new one when
// it is earlier than the live one, and an entry that no longer matches
// its connection's wakeAt is skipped when it comes up. A received
// datagram moves no timer (it only sets lastHeard), which keeps the
// per-message path free of heap work; tick re-arms the timer when it runs.
type timerHeap []timerEntry

type timerEntry struct {
	at   time.Time
	conn *Conn
}

func (h *timerHeap) push(e timerEntry) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !s[i].at.Before(s[parent].at) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *timerHeap) pop() timerEntry {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = timerEntry{}
	s = s[:last]
	for i := 0; ; {
		smallest := i
		for _, child := range [2]int{2*i + 1, 2*i + 2} {
			if child < len(s) && s[child].at.Before(s[smallest].at) {
				smallest = child
			}
		}
		if smallest == i {
			break
		}
		s[i], s[smallest] = s[smallest], s[i]
		i = smallest
	}
	*h = s
	return top
}

// next returns when the earliest entry is due; ok is false when there is
// none.
func (h timerHeap) next() (at time.Time, ok bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].at, true
}
