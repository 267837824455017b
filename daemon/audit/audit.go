// Package audit writes Tollgate's audit log: one JSON object per line for every decision,
// in a size-bounded file rotated into a fixed number of older files.
//
// Log never blocks. Entries go through a buffered channel to a single writer goroutine,
// which formats them, so the NRI hook pays for a channel send and nothing else. When the
// channel is full the entry is dropped and counted: stalling every pod start on the node
// behind a slow disk would be worse than a gap in the log, and the gap is visible.
package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"tollgate.dev/tollgate/policy"
)

// Entry is one decision as the daemon saw it. It is passed by value, and formatted off the
// hot path.
type Entry struct {
	Time       time.Time
	Node       string
	Path       string // "hook", "preverify" or "recheck"
	Request    policy.Request
	Decision   policy.Decision
	Latency    time.Duration
	Cached     bool
	Generation uint64
	// Unanswered, on the hook path, says why the runtime never received this answer (it
	// was ready after the runtime's own deadline, or the runtime had closed the
	// connection). The record then says no answer reached the runtime, and keeps the
	// decision reached too late as "decided".
	Unanswered string
	// FromVolume, on the hook path, says this is the decision of an image the container
	// mounts as a volume (KEP-4639) rather than of the container's own image; Request.Image
	// is then the volume's image, and Volume the path the container sees it at.
	FromVolume bool
	Volume     string
}

// Subjects of a record: which image of a container the decision is about.
const (
	SubjectImage  = "container_image"
	SubjectVolume = "image_volume"
)

// OutcomeNoAnswer is the outcome of a hook call whose answer never reached the runtime.
const OutcomeNoAnswer = "no_answer"

// Record is the JSON form of an Entry, one line of the log.
type Record struct {
	Time         string   `json:"time"`
	Node         string   `json:"node,omitempty"`
	Path         string   `json:"path"`
	Namespace    string   `json:"namespace,omitempty"`
	Pod          string   `json:"pod,omitempty"`
	Container    string   `json:"container,omitempty"`
	Image        string   `json:"image"`
	ConfigDigest string   `json:"config_digest"`
	Digests      []string `json:"digests"`
	Policy       string   `json:"policy,omitempty"`
	Generation   uint64   `json:"policy_generation"`
	Mode         string   `json:"mode,omitempty"`
	Outcome      string   `json:"outcome"`
	Allowed      bool     `json:"allowed"`
	Decided      string   `json:"decided,omitempty"` // with outcome no_answer: the decision the runtime never got
	Reasons      []Reason `json:"reasons,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
	Message      string   `json:"message,omitempty"`
	Cached       bool     `json:"cached"`
	LatencyMS    float64  `json:"latency_ms"`
	Subject      string   `json:"subject,omitempty"` // on the hook path: container_image or image_volume
	Volume       string   `json:"volume,omitempty"`  // with subject image_volume: where the container mounts it
}

// Reason is one verification failure.
type Reason struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// NewRecord formats e.
func NewRecord(e Entry) Record {
	img := e.Request.Image
	digests := img.Digests
	if digests == nil {
		digests = []string{}
	}
	r := Record{
		Time:         e.Time.UTC().Format(time.RFC3339Nano),
		Node:         e.Node,
		Path:         e.Path,
		Namespace:    e.Request.Namespace,
		Pod:          e.Request.Pod,
		Container:    e.Request.Container,
		Image:        img.Name(),
		ConfigDigest: img.ConfigDigest,
		Digests:      digests,
		Policy:       e.Decision.Policy,
		Generation:   e.Generation,
		Mode:         string(e.Decision.Mode),
		Outcome:      string(e.Decision.Outcome),
		Allowed:      e.Decision.Allowed,
		Warnings:     e.Decision.Warnings,
		Message:      e.Decision.Message,
		Cached:       e.Cached,
		LatencyMS:    float64(e.Latency.Microseconds()) / 1000,
	}
	if e.Path == "hook" {
		r.Subject = SubjectImage
		if e.FromVolume {
			r.Subject, r.Volume = SubjectVolume, e.Volume
		}
	}
	if e.Unanswered != "" {
		r.Decided = r.Outcome
		r.Outcome, r.Allowed = OutcomeNoAnswer, false
		r.Message = e.Unanswered
		if e.Decision.Message != "" {
			r.Message += "; the decision it never received: " + e.Decision.Message
		}
	}
	for _, re := range e.Decision.Reasons {
		if re != nil {
			r.Reasons = append(r.Reasons, Reason{Kind: string(re.Kind), Message: re.Error()})
		}
	}
	return r
}

// Options bound the log.
type Options struct {
	MaxBytes int64 // rotate when the file would grow past this (default 50 MiB)
	Keep     int   // rotated files kept: path.1 … path.Keep (default 5)
	Buffer   int   // entries queued before Log drops (default 4096); memory grows with the queue, not with this bound
}

// Writer is an audit log. Log is safe for concurrent use.
type Writer struct {
	path string
	opts Options

	// The queue is a slice that grows only while the writer falls behind: a channel of
	// Buffer entries would hold them all from the start (1.5 MiB at the default 4096,
	// measured in the real tollgated), for a queue that is nearly always empty.
	mu      sync.Mutex
	queue   []Entry
	closed  bool
	wake    chan struct{} // one pending signal: entries queued, or Close
	dropped atomic.Uint64
	errs    atomic.Uint64
	onError func(error)

	closeOnce sync.Once
	done      chan struct{}

	// Owned by the writer goroutine.
	f    *os.File
	bw   *bufio.Writer
	size int64
}

// Open opens (appending) or creates the log at path and starts its writer. onError, if not
// nil, hears about write failures (rate-limited by the caller as it sees fit).
func Open(path string, opts Options, onError func(error)) (*Writer, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 50 << 20
	}
	if opts.Keep <= 0 {
		opts.Keep = 5
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 4096
	}
	if onError == nil {
		onError = func(error) {}
	}
	w := &Writer{path: path, opts: opts, wake: make(chan struct{}, 1), onError: onError, done: make(chan struct{})}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	go w.loop()
	return w, nil
}

// Log queues e. It never blocks; it reports false when the queue was full and e dropped.
func (w *Writer) Log(e Entry) bool {
	w.mu.Lock()
	if len(w.queue) >= w.opts.Buffer {
		w.mu.Unlock()
		w.dropped.Add(1)
		return false
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	w.signal()
	return true
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default: // a signal is pending already
	}
}

// Dropped is the number of entries dropped because the queue was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Close writes what is queued and closes the file. Log must not be called after Close.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.signal()
	})
	<-w.done
	return nil
}

func (w *Writer) loop() {
	defer close(w.done)
	var batch []Entry
	for closed := false; !closed; {
		<-w.wake
		w.mu.Lock()
		batch, w.queue = w.queue, batch[:0]
		closed = w.closed
		w.mu.Unlock()
		for i := range batch {
			w.write(batch[i])
		}
		clear(batch) // no strings kept alive by a spare buffer
		if cap(batch) > 256 {
			batch = nil // a burst's buffer goes back to the heap with the burst
		}
		// Flush when the queue is drained: batches under load, prompt when idle.
		w.mu.Lock()
		drained := len(w.queue) == 0
		w.mu.Unlock()
		if drained {
			w.flush()
		}
	}
	w.flush()
	if w.f != nil {
		w.f.Close()
	}
}

func (w *Writer) write(e Entry) {
	line, err := json.Marshal(NewRecord(e))
	if err != nil {
		w.fail(fmt.Errorf("audit log: encode: %w", err))
		return
	}
	line = append(line, '\n')
	if w.f == nil { // an earlier rotation failed: try again
		if err := w.open(); err != nil {
			w.fail(err)
			return
		}
	}
	if w.size > 0 && w.size+int64(len(line)) > w.opts.MaxBytes {
		if err := w.rotate(); err != nil {
			w.fail(err)
			return
		}
	}
	n, err := w.bw.Write(line)
	w.size += int64(n)
	if err != nil {
		w.fail(fmt.Errorf("audit log: write: %w", err))
	}
}

func (w *Writer) flush() {
	if w.bw != nil {
		if err := w.bw.Flush(); err != nil {
			w.fail(fmt.Errorf("audit log: write: %w", err))
		}
	}
}

func (w *Writer) fail(err error) {
	w.errs.Add(1)
	w.onError(err)
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	w.f, w.size = f, info.Size()
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(f, 64<<10)
	} else {
		w.bw.Reset(f)
	}
	return nil
}

// rotate shifts path.(Keep-1) → path.Keep … path → path.1 and starts an empty path.
func (w *Writer) rotate() error {
	w.flush()
	w.f.Close()
	w.f = nil
	os.Remove(fmt.Sprintf("%s.%d", w.path, w.opts.Keep))
	for i := w.opts.Keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return fmt.Errorf("audit log: rotate: %w", err)
	}
	return w.open()
}
