package taskhttp

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/task"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are taskd's Prometheus metrics:
//
//	taskd_tasks{state,kind}                          tasks in the store (gauge, read at scrape)
//	taskd_task_cancellations_total{cause}            tasks stopped by a cancellation, by cause kind
//	taskd_task_stop_latency_seconds{cause}           cancellation to the function's return (histogram)
//	taskd_http_requests_total{method,route,code}     HTTP requests of the API
//	taskd_http_request_duration_seconds{method,route} their durations (histogram)
//
// plus the Go runtime and process collectors. Cause kinds are bounded:
// request, timeout, lease_lost, shutdown, client_disconnected,
// server_shutdown, deadline, other. A nil *Metrics records nothing. All
// methods are safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	cancels   *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
}

// NewMetrics returns the metrics, with taskd_tasks read from store at
// each scrape.
func NewMetrics(store task.Store) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskd_task_cancellations_total",
			Help: "Tasks stopped by a cancellation, by the kind of its cause.",
		}, []string{"cause"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskd_task_stop_latency_seconds",
			Help:    "Time from a task's cancellation reaching its node to its function's return.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10), // 10µs .. 2.6s
		}, []string{"cause"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskd_http_requests_total",
			Help: "HTTP requests served by the task API, by method, route and status code.",
		}, []string{"method", "route", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskd_http_request_duration_seconds",
			Help:    "Durations of the task API's HTTP requests (event streams included).",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	m.reg.MustRegister(m.cancels, m.latency, m.requests, m.durations,
		&taskCollector{store: store},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry, for a program that adds its own metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Stopped records a task that stopped on this node; pass it as
// task.Config.OnStop. It never blocks.
func (m *Metrics) Stopped(s task.Stopped) {
	if m == nil || s.Cause == nil {
		return
	}
	kind := CauseKind(s.Cause)
	m.cancels.WithLabelValues(kind).Inc()
	m.latency.WithLabelValues(kind).Observe(s.StopLatency.Seconds())
}

// canceledQueued records a queued task canceled by a request.
func (m *Metrics) canceledQueued() {
	if m != nil {
		m.cancels.WithLabelValues(task.CauseRequest).Inc()
	}
}

// CauseKind is task.CauseKind, plus "client_disconnected" and
// "server_shutdown" for request-scoped tasks whose request ended. It never
// blocks.
func CauseKind(cause error) string {
	switch {
	case errors.Is(cause, cancelhttp.ErrClientDisconnected):
		return "client_disconnected"
	case errors.Is(cause, cancelhttp.ErrServerShutdown):
		return "server_shutdown"
	}
	return task.CauseKind(cause)
}

// instrument counts the requests of one route.
func (m *Metrics) instrument(route string, h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		m.requests.WithLabelValues(r.Method, route, strconv.Itoa(rec.code)).Inc()
		m.durations.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
	})
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Flush).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// taskCollector counts the store's tasks by state and kind at each scrape.
type taskCollector struct{ store task.Store }

var tasksDesc = prometheus.NewDesc("taskd_tasks", "Tasks in the store, by state and kind.", []string{"state", "kind"}, nil)

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tasksDesc }

func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type key struct{ state, kind string }
	counts := make(map[key]int)
	kinds := make(map[string]bool)
	opts := task.ListOptions{PageSize: task.MaxPageSize}
	for {
		page, err := c.store.List(ctx, opts)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(tasksDesc, err)
			return
		}
		for _, t := range page.Tasks {
			counts[key{string(t.State), t.Kind}]++
			kinds[t.Kind] = true
		}
		if page.NextPageToken == "" {
			break
		}
		opts.PageToken = page.NextPageToken
	}
	// Every state of every kind seen, zeros included, so rates and sums
	// over states work.
	for kind := range kinds {
		for _, st := range task.States {
			ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue,
				float64(counts[key{string(st), kind}]), string(st), kind)
		}
	}
}
