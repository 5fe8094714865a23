// Command loadgen is the HTTP/1.1 load generator of bench/ingest_ladder.py.
//
// Two modes, both over a fixed set of keep-alive connections to one loopback URL:
//
//   - rate: open loop. Request i is scheduled at start + i/rate; its latency is timed
//     from that scheduled instant, not from when a connection became free, so a slow
//     server cannot hide its queueing (no coordinated omission).
//   - max: closed loop. Every connection sends its next request as soon as the previous
//     answer arrived; the completion rate is the server's saturation throughput.
//
// It speaks just enough HTTP/1.1 by hand (pre-built request bytes, Content-Length and
// chunked responses) to stay far cheaper per request than the servers it measures.
// Standard library only. The result is one JSON object on stdout.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type event struct {
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers"`
}

type config struct {
	target   *url.URL
	requests [][]byte
	mode     string
	rate     float64
	duration time.Duration
	maxReqs  int64
	conns    int
	timeout  time.Duration
	grace    time.Duration
}

// workerResult is owned by one goroutine until the run ends, so recording needs no lock.
type workerResult struct {
	latencies []int64 // ns, one per answered request (any status)
	statuses  map[int]int64
	errs      map[string]int64
	lastDone  time.Time
}

type summary struct {
	Mode          string           `json:"mode"`
	TargetRate    float64          `json:"target_rate"`
	Conns         int              `json:"conns"`
	DurationS     float64          `json:"duration_s"`
	ElapsedS      float64          `json:"elapsed_s"`
	Scheduled     int64            `json:"scheduled"`
	Sent          int64            `json:"sent"`
	Answered      int64            `json:"answered"`
	OK            int64            `json:"ok"`
	Errors        map[string]int64 `json:"errors"`
	Throughput    float64          `json:"throughput"`
	OKThroughput  float64          `json:"ok_throughput"`
	P50Ms         float64          `json:"p50_ms"`
	P90Ms         float64          `json:"p90_ms"`
	P99Ms         float64          `json:"p99_ms"`
	P999Ms        float64          `json:"p999_ms"`
	MaxMs         float64          `json:"max_ms"`
	LoadgenCPUS   float64          `json:"loadgen_cpu_s"`
	LoadgenCPUPct float64          `json:"loadgen_cpu_pct"`
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	out, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(1)
	}
}

func parseFlags() (*config, error) {
	rawURL := flag.String("url", "", "target, e.g. http://127.0.0.1:8080/webhooks/nexuspromail")
	events := flag.String("events", "", "JSON file: [{\"body\": ..., \"headers\": {...}}, ...]")
	mode := flag.String("mode", "rate", "rate (open loop) or max (closed loop)")
	rate := flag.Float64("rate", 1000, "requests per second (rate mode)")
	duration := flag.Duration("duration", 6*time.Second, "how long to send")
	maxReqs := flag.Int64("max-requests", 500000, "hard cap on requests sent")
	conns := flag.Int("conns", 64, "keep-alive connections")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	grace := flag.Duration("grace", 2*time.Second, "rate mode: how late a request may still be sent")
	flag.Parse()

	target, err := url.Parse(*rawURL)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		return nil, fmt.Errorf("-url must be an http:// URL, got %q", *rawURL)
	}
	host := target.Hostname()
	if host != "127.0.0.1" && host != "localhost" && host != "::1" {
		return nil, fmt.Errorf("refusing a non-loopback target %q", host)
	}
	if *mode != "rate" && *mode != "max" {
		return nil, fmt.Errorf("-mode must be rate or max")
	}
	if *conns < 1 || *rate <= 0 || *duration <= 0 || *duration > 60*time.Second || *maxReqs < 1 {
		return nil, fmt.Errorf("need conns>=1, rate>0, 0<duration<=60s, max-requests>=1")
	}
	data, err := os.ReadFile(*events)
	if err != nil {
		return nil, err
	}
	var evs []event
	if err := json.Unmarshal(data, &evs); err != nil || len(evs) == 0 {
		return nil, fmt.Errorf("-events: need a non-empty JSON array of events: %v", err)
	}
	reqs := make([][]byte, len(evs))
	path := target.RequestURI()
	for i, ev := range evs {
		var b strings.Builder
		fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", path, target.Host, len(ev.Body))
		names := make([]string, 0, len(ev.Headers))
		for k := range ev.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(&b, "%s: %s\r\n", k, ev.Headers[k])
		}
		b.WriteString("\r\n")
		b.WriteString(ev.Body)
		reqs[i] = []byte(b.String())
	}
	return &config{
		target: target, requests: reqs, mode: *mode, rate: *rate, duration: *duration,
		maxReqs: *maxReqs, conns: *conns, timeout: *timeout, grace: *grace,
	}, nil
}

type conn struct {
	c   net.Conn
	r   *bufio.Reader
	cfg *config
}

func dial(cfg *config) (*conn, error) {
	c, err := net.DialTimeout("tcp", cfg.target.Host, cfg.timeout)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReaderSize(c, 16*1024), cfg: cfg}, nil
}

func (k *conn) close() {
	if k.c != nil {
		_ = k.c.Close()
		k.c = nil
	}
}

// do sends one request and reads the whole answer; keepAlive=false means reconnect next time.
func (k *conn) do(req []byte) (status int, keepAlive bool, err error) {
	if err := k.c.SetDeadline(time.Now().Add(k.cfg.timeout)); err != nil {
		return 0, false, err
	}
	if _, err := k.c.Write(req); err != nil {
		return 0, false, err
	}
	line, err := k.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || string(line[:5]) != "HTTP/" {
		return 0, false, errors.New("bad status line")
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errors.New("bad status code")
	}
	keepAlive = string(line[:8]) == "HTTP/1.1"
	length, chunked := int64(-1), false
	for {
		h, err := k.r.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		if len(h) <= 2 {
			break
		}
		colon := indexByte(h, ':')
		if colon < 0 {
			continue
		}
		name := strings.ToLower(string(h[:colon]))
		value := strings.TrimSpace(string(h[colon+1:]))
		switch name {
		case "content-length":
			length, err = strconv.ParseInt(value, 10, 64)
			if err != nil {
				return status, false, errors.New("bad content-length")
			}
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(value), "chunked")
		case "connection":
			v := strings.ToLower(value)
			if strings.Contains(v, "close") {
				keepAlive = false
			} else if strings.Contains(v, "keep-alive") {
				keepAlive = true
			}
		}
	}
	switch {
	case chunked:
		err = k.skipChunked()
	case length >= 0:
		_, err = k.r.Discard(int(length))
	default: // body until close
		_, err = io.Copy(io.Discard, k.r)
		keepAlive = false
	}
	if err != nil {
		return status, false, err
	}
	return status, keepAlive, nil
}

func (k *conn) skipChunked() error {
	for {
		line, err := k.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		s := strings.TrimSpace(string(line))
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		size, err := strconv.ParseInt(s, 16, 64)
		if err != nil {
			return errors.New("bad chunk size")
		}
		if size == 0 {
			for { // trailers until the empty line
				t, err := k.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(t) <= 2 {
					return nil
				}
			}
		}
		if _, err := k.r.Discard(int(size) + 2); err != nil {
			return err
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func errKind(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "closed"
	}
	return "conn_error"
}

func run(cfg *config) (*summary, error) {
	conns := make([]*conn, cfg.conns)
	for i := range conns {
		c, err := dial(cfg)
		if err != nil {
			for _, d := range conns[:i] {
				d.close()
			}
			return nil, fmt.Errorf("connect %s: %w", cfg.target.Host, err)
		}
		conns[i] = c
	}
	var total int64
	if cfg.mode == "rate" {
		total = int64(cfg.rate * cfg.duration.Seconds())
		if total > cfg.maxReqs {
			total = cfg.maxReqs
		}
	} else {
		total = cfg.maxReqs
	}
	interval := float64(time.Second) / cfg.rate
	var next, sent atomic.Int64
	results := make([]*workerResult, cfg.conns)
	var wg sync.WaitGroup
	start := time.Now().Add(20 * time.Millisecond)
	stopSending := start.Add(cfg.duration)
	if cfg.mode == "rate" {
		stopSending = start.Add(cfg.duration + cfg.grace)
	}
	for w := range conns {
		res := &workerResult{
			latencies: make([]int64, 0, int(total)/cfg.conns+1024),
			statuses:  map[int]int64{},
			errs:      map[string]int64{},
		}
		results[w] = res
		wg.Add(1)
		go func(k *conn) {
			defer wg.Done()
			defer k.close()
			time.Sleep(time.Until(start))
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				var scheduled time.Time
				if cfg.mode == "rate" {
					scheduled = start.Add(time.Duration(float64(i) * interval))
					if d := time.Until(scheduled); d > 0 {
						time.Sleep(d)
					}
				} else {
					scheduled = time.Now()
				}
				if !time.Now().Before(stopSending) {
					if cfg.mode == "rate" {
						// The generator fell this far behind its schedule only because every
						// connection was busy: count what was never sent, then stop.
						// Swap hands the unclaimed tail to exactly one worker; each worker
						// also counts the ticket it holds.
						unsent := int64(1)
						if p := next.Swap(total); p < total {
							unsent += total - p
						}
						res.errs["unsent"] += unsent
					}
					return
				}
				if k.c == nil {
					nc, err := dial(cfg)
					if err != nil {
						res.errs["connect"]++
						res.lastDone = time.Now()
						continue
					}
					*k = *nc
				}
				req := cfg.requests[int(i)%len(cfg.requests)]
				sent.Add(1)
				status, keep, err := k.do(req)
				done := time.Now()
				res.lastDone = done
				if err != nil {
					res.errs[errKind(err)]++
					k.close()
					continue
				}
				res.latencies = append(res.latencies, int64(done.Sub(scheduled)))
				res.statuses[status]++
				if !keep {
					k.close()
				}
			}
		}(conns[w])
	}
	wg.Wait()

	out := &summary{
		Mode: cfg.mode, Conns: cfg.conns, DurationS: cfg.duration.Seconds(),
		Scheduled: total, Sent: sent.Load(), Errors: map[string]int64{},
	}
	if cfg.mode == "rate" {
		out.TargetRate = cfg.rate
	} else {
		out.Scheduled = sent.Load()
	}
	var all []int64
	last := start
	for _, r := range results {
		all = append(all, r.latencies...)
		for s, n := range r.statuses {
			if s >= 200 && s < 300 {
				out.OK += n
			} else {
				out.Errors[strconv.Itoa(s)] += n
			}
		}
		for kind, n := range r.errs {
			out.Errors[kind] += n
		}
		if r.lastDone.After(last) {
			last = r.lastDone
		}
	}
	out.Answered = int64(len(all))
	elapsed := last.Sub(start).Seconds()
	out.ElapsedS = elapsed
	if elapsed > 0 {
		out.Throughput = float64(out.Answered) / elapsed
		out.OKThroughput = float64(out.OK) / elapsed
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		idx := int(p*float64(len(all))+0.5) - 1
		if idx < 0 {
			idx = 0
		}
		if idx >= len(all) {
			idx = len(all) - 1
		}
		return float64(all[idx]) / 1e6
	}
	out.P50Ms, out.P90Ms, out.P99Ms, out.P999Ms = pct(0.50), pct(0.90), pct(0.99), pct(0.999)
	if len(all) > 0 {
		out.MaxMs = float64(all[len(all)-1]) / 1e6
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		out.LoadgenCPUS = cpu
		if elapsed > 0 {
			out.LoadgenCPUPct = 100 * cpu / elapsed
		}
	}
	return out, nil
}
