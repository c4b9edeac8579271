package cancellation_test

// What Go's own context tests check ($GOROOT/src/context: x_test.go,
// afterfunc_test.go, context_test.go and the Cause table), checked again
// with Tokens as the context under test and as parents of both Tokens and
// stdlib contexts. Where a Token deliberately behaves differently, the test
// checks the Token's behaviour and names the difference; docs/cancellation.md
// lists them with the reasons.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
)

const (
	shortDuration    = time.Millisecond
	veryLongDuration = 1000 * time.Hour
)

// otherContext is a context of a type neither package knows: it hides the
// Token's type and its AfterFunc method, as middleware wrappers do.
type otherContext struct{ context.Context }

// A kind makes a cancelable context: the stdlib's, or a Token.
type kind struct {
	name         string
	withCancel   func(parent context.Context) (context.Context, context.CancelCauseFunc)
	withDeadline func(parent context.Context, d time.Time, cause error) (context.Context, context.CancelFunc)
}

var kinds = []kind{
	{
		name:       "context",
		withCancel: context.WithCancelCause,
		withDeadline: func(p context.Context, d time.Time, cause error) (context.Context, context.CancelFunc) {
			return context.WithDeadlineCause(p, d, cause)
		},
	},
	{
		name: "Token",
		withCancel: func(p context.Context) (context.Context, context.CancelCauseFunc) {
			s := cancellation.New(p)
			return s.Token(), func(cause error) { s.CancelCause(cause) }
		},
		withDeadline: func(p context.Context, d time.Time, cause error) (context.Context, context.CancelFunc) {
			s := cancellation.New(p)
			s.SetDeadlineCause(d, cause)
			return s.Token(), func() { s.Cancel() }
		},
	},
}

func isDone(c context.Context) bool { return closed(c.Done()) }

// x_test.go TestWithCancel: a child is canceled synchronously by its
// parent's cancel, through an unknown wrapper too.
//
// Differences: a stdlib child of a wrapped Token (context.WithCancel of an
// otherContext holding a Token) is canceled asynchronously, by a goroutine of
// the context package: the wrapper hides Token.AfterFunc and the context
// package adopts only its own types as parents. And a Token child of a
// stdlib context is canceled asynchronously, through context.AfterFunc: the
// context package offers no synchronous hook.
func TestPortWithCancel(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c1, cancel := k.withCancel(context.Background())
			o := otherContext{c1}
			c2, cancel2 := context.WithCancel(o)
			defer cancel2()
			c3 := cancellation.New(o)
			c4 := cancellation.New(c1)
			contexts := []context.Context{c1, o, c2, c3.Token(), c4.Token()}
			for i, c := range contexts {
				if c.Done() == nil || c.Err() != nil || isDone(c) {
					t.Errorf("c[%d]: Done %v, Err %v, done %v before cancel", i, c.Done(), c.Err(), isDone(c))
				}
			}
			cancel(nil) // propagates synchronously
			for i, c := range contexts {
				switch {
				case i == 2 && k.name == "Token":
					within(t, c.Done(), "stdlib child of a wrapped Token (asynchronous: documented difference)")
				case i >= 3 && k.name == "context":
					within(t, c.Done(), "Token child of a stdlib context (asynchronous: documented difference)")
				}
				if !isDone(c) || c.Err() != context.Canceled {
					t.Errorf("c[%d]: done %v, Err %v after cancel", i, isDone(c), c.Err())
				}
			}
		})
	}
}

func testDeadline(t *testing.T, c context.Context, name string) {
	t.Helper()
	within(t, c.Done(), name+": not timed out")
	if e := c.Err(); e != context.DeadlineExceeded {
		t.Errorf("%s: Err() = %v, want DeadlineExceeded", name, e)
	}
}

// x_test.go TestDeadline, TestTimeout.
func TestPortDeadline(t *testing.T) {
	t.Parallel()
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			bg := context.Background()
			c, cancel := k.withDeadline(bg, time.Now().Add(shortDuration), nil)
			defer cancel()
			testDeadline(t, c, "WithDeadline")

			c, cancel = k.withDeadline(bg, time.Now().Add(shortDuration), nil)
			defer cancel()
			testDeadline(t, otherContext{c}, "WithDeadline+otherContext")

			c, cancel = k.withDeadline(bg, time.Now().Add(shortDuration), nil)
			defer cancel()
			for _, k2 := range kinds {
				c2, cancel2 := k2.withDeadline(otherContext{c}, time.Now().Add(veryLongDuration), nil)
				defer cancel2()
				testDeadline(t, c2, "WithDeadline+otherContext+"+k2.name)
			}

			c, cancel = k.withDeadline(bg, time.Now().Add(-shortDuration), nil)
			defer cancel()
			testDeadline(t, c, "WithDeadline+inthepast")

			c, cancel = k.withDeadline(bg, time.Now(), nil)
			defer cancel()
			testDeadline(t, c, "WithDeadline+now")
		})
	}
}

// x_test.go TestCanceledTimeout: canceling a context with a long deadline
// is synchronous and its Err is Canceled.
func TestPortCanceledTimeout(t *testing.T) {
	t.Parallel()
	for _, k := range kinds {
		for _, k2 := range kinds {
			c, cancel := k.withDeadline(context.Background(), time.Now().Add(time.Second), nil)
			defer cancel()
			c2, cancel2 := k2.withDeadline(otherContext{c}, time.Now().Add(veryLongDuration), nil)
			cancel2()
			if !isDone(c2) || c2.Err() != context.Canceled {
				t.Errorf("%s under %s: done %v, Err %v", k2.name, k.name, isDone(c2), c2.Err())
			}
		}
	}
}

type portKey1 int
type portKey2 int

// x_test.go TestValues, with Tokens between the value layers.
func TestPortValues(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := portKey1(1), portKey2(1), portKey2(3)
	check := func(c context.Context, nm, v1, v2, v3 string) {
		t.Helper()
		for i, kv := range []struct {
			key  any
			want string
		}{{k1, v1}, {k2, v2}, {k3, v3}} {
			if v, ok := c.Value(kv.key).(string); ok == (kv.want == "") || v != kv.want {
				t.Errorf("%s.Value(k%d) = %q, %t want %q", nm, i+1, v, ok, kv.want)
			}
		}
	}
	tok := func(p context.Context) context.Context { return cancellation.New(p).Token() }
	c0 := tok(context.Background())
	check(c0, "c0", "", "", "")
	c1 := tok(context.WithValue(context.Background(), k1, "c1k1"))
	check(c1, "c1", "c1k1", "", "")
	c2 := tok(context.WithValue(c1, k2, "c2k2"))
	check(c2, "c2", "c1k1", "c2k2", "")
	c3 := tok(tok(context.WithValue(c2, k3, "c3k3")))
	check(c3, "c3", "c1k1", "c2k2", "c3k3")
	c4 := tok(context.WithValue(c3, k1, nil))
	check(c4, "c4", "", "c2k2", "c3k3")
	o1 := tok(otherContext{context.WithValue(context.Background(), k1, "c1k1")})
	check(o1, "o1", "c1k1", "", "")
	o2 := context.WithValue(o1, k2, "o2k2")
	check(o2, "o2", "c1k1", "o2k2", "")
	o3 := tok(otherContext{c4})
	check(o3, "o3", "", "c2k2", "c3k3")
	o4 := tok(context.WithValue(o3, k3, nil))
	check(o4, "o4", "", "c2k2", "")
	// Values come from the first parent only.
	m := cancellation.New(context.Background(), c3)
	check(m.Token(), "merge", "", "", "")
}

// x_test.go TestAllocs: a Token never allocates more than context for the
// same job (the context package's own limits).
func TestPortAllocs(t *testing.T) {
	parent := cancellation.New()
	defer parent.Cancel()
	for _, test := range []struct {
		desc  string
		f     func()
		limit float64
	}{
		{"New().Token()", func() { _ = cancellation.New().Token() }, 0 + 1},
		{"WithValue(tok, k, nil)", func() {
			c := context.WithValue(parent.Token(), portKey1(1), nil)
			c.Value(portKey1(1))
		}, 3},
		{"New(tok)+CancelAfter(1ns)+<-Done", func() {
			s := cancellation.New(parent.Token())
			s.CancelAfter(time.Nanosecond)
			<-s.Token().Done()
		}, 12},
		{"New(tok)+Cancel+<-Done", func() {
			s := cancellation.New(parent.Token())
			s.Cancel()
			<-s.Token().Done()
		}, 5},
		{"New(tok)+CancelAfter(5ms)+Cancel+<-Done", func() {
			s := cancellation.New(parent.Token())
			s.CancelAfter(5 * time.Millisecond)
			s.Cancel()
			<-s.Token().Done()
		}, 8},
	} {
		if n := testing.AllocsPerRun(100, test.f); n > test.limit {
			t.Errorf("%s allocs = %v, want <= %v", test.desc, n, test.limit)
		}
	}
}

// x_test.go TestSimultaneousCancels: a tree of Tokens and stdlib contexts,
// every one canceled at once from its own goroutine; nothing deadlocks.
func TestPortSimultaneousCancels(t *testing.T) {
	t.Parallel()
	root := cancellation.New()
	m := map[context.Context]func(){root.Token(): func() { root.Cancel() }}
	q := []context.Context{root.Token()}
	for i := 0; len(q) != 0 && len(m) < 100; i++ {
		parent := q[0]
		q = q[1:]
		for j := range 4 {
			var c context.Context
			var cancel func()
			if (i+j)%2 == 0 {
				s := cancellation.New(parent)
				c, cancel = s.Token(), func() { s.Cancel() }
			} else {
				c, cancel = context.WithCancel(parent)
			}
			m[c] = cancel
			q = append(q, c)
		}
	}
	var wg sync.WaitGroup
	for _, cancel := range m {
		wg.Go(cancel)
	}
	for c := range m {
		within(t, c.Done(), "a context of the tree")
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	within(t, done, "the cancel functions")
}

// x_test.go TestInterlockedCancels: a child canceled by a goroutine waiting
// on its parent, or from the parent's own callback.
func TestPortInterlockedCancels(t *testing.T) {
	t.Parallel()
	parent := cancellation.New()
	child := cancellation.New(parent.Token())
	stdChild, cancelStd := context.WithCancel(parent.Token())
	go func() {
		<-parent.Token().Done()
		child.Cancel()
		cancelStd()
	}()
	other := cancellation.New(parent.Token())
	parent.Token().Register(func() { other.Cancel() }) // re-entrant: other is being canceled too
	parent.Cancel()
	within(t, child.Token().Done(), "child")
	within(t, stdChild.Done(), "stdlib child")
	if !other.Token().IsCanceled() {
		t.Error("child canceled from the parent's callback is not canceled")
	}
}

// x_test.go testLayers: random stacks of value, cancel and timeout layers,
// Tokens and stdlib contexts mixed; values stay visible, and canceling any
// layer (or a timeout) ends the top.
func TestPortLayersCancel(t *testing.T)  { testPortLayers(t, rand.Uint64(), false) }
func TestPortLayersTimeout(t *testing.T) { testPortLayers(t, rand.Uint64(), true) }

func testPortLayers(t *testing.T, seed uint64, timeout bool) {
	t.Parallel()
	r := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed=%d", seed)
	type value int
	var (
		vals    []*value
		cancels []func()
		// async[i]: canceling cancels[i] reaches the top through at least
		// one asynchronous link (see the documented differences).
		async    []bool
		timers   int
		ctx      = context.Background()
		owner    = "" // who cancels ctx: "token", "context" or ""
		wrapped  = false
		topAsync = false
	)
	// link records a new cancelable layer on top, linked to ctx below.
	link := func(isToken bool) {
		var a bool
		switch {
		case owner == "":
		case isToken:
			a = owner == "context" // New(stdlib ctx) links through context.AfterFunc
		default:
			a = owner == "token" && wrapped // the context package cannot see the Token
		}
		for i := range async {
			async[i] = async[i] || a
		}
		topAsync = topAsync || a
		owner, wrapped = map[bool]string{true: "token", false: "context"}[isToken], false
	}
	for i := 0; i < 30 || timers == 0 || len(cancels) == 0 || len(vals) == 0; i++ {
		d := veryLongDuration
		if timeout {
			d = shortDuration
		}
		switch r.IntN(5) {
		case 0:
			v := new(value)
			ctx = context.WithValue(ctx, v, v)
			vals = append(vals, v)
			wrapped = owner != ""
		case 1:
			link(false)
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			cancels, async = append(cancels, cancel), append(async, false)
		case 2:
			link(true)
			s := cancellation.New(ctx)
			ctx = s.Token()
			cancels, async = append(cancels, func() { s.Cancel() }), append(async, false)
		case 3:
			link(false)
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			cancels, async = append(cancels, cancel), append(async, false)
			timers++
		case 4:
			link(true)
			s := cancellation.New(ctx)
			s.CancelAfter(d)
			ctx = s.Token()
			cancels, async = append(cancels, func() { s.Cancel() }), append(async, false)
			timers++
		}
	}
	_ = topAsync
	checkValues := func(when string) {
		for _, key := range vals {
			if val, _ := ctx.Value(key).(*value); key != val {
				t.Errorf("%s: ctx.Value(%p) = %p want %p", when, key, val, key)
			}
		}
	}
	if !timeout && isDone(ctx) {
		t.Error("ctx done before any cancel")
	}
	checkValues("before cancel")
	if timeout {
		within(t, ctx.Done(), "the top after the timeouts")
	} else {
		i := r.IntN(len(cancels))
		cancels[i]()
		if async[i] {
			within(t, ctx.Done(), "the top, through an asynchronous link")
		} else if !isDone(ctx) {
			t.Errorf("layer %d canceled, top not done synchronously", i)
		}
	}
	checkValues("after cancel")
	for _, cancel := range cancels {
		cancel()
	}
}

var errBecause = errors.New("because")

// x_test.go TestWithCancelCanceledParent: children of a canceled Token
// start canceled, with its cause.
func TestPortWithCancelCanceledParent(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	p.CancelCause(errBecause)
	for name, c := range map[string]context.Context{
		"WithCancel(tok)":          must(context.WithCancel(p.Token())),
		"New(tok)":                 cancellation.New(p.Token()).Token(),
		"New(otherContext{tok})":   cancellation.New(otherContext{p.Token()}).Token(),
		"WithCancel(otherContext)": must(context.WithCancel(otherContext{p.Token()})),
	} {
		if !isDone(c) || c.Err() != context.Canceled || context.Cause(c) != errBecause {
			t.Errorf("%s: done %v, Err %v, Cause %v", name, isDone(c), c.Err(), context.Cause(c))
		}
	}
}

func must(c context.Context, _ context.CancelFunc) context.Context { return c }

// x_test.go TestWithCancelSimultaneouslyCanceledParent.
func TestPortWithCancelSimultaneouslyCanceledParent(t *testing.T) {
	t.Parallel()
	for i := range 200 {
		p := cancellation.New()
		go p.CancelCause(errBecause)
		var c context.Context
		if i%2 == 0 {
			c = cancellation.New(p.Token()).Token()
		} else {
			var cancel context.CancelFunc
			c, cancel = context.WithCancel(p.Token())
			defer cancel()
		}
		<-c.Done()
		if c.Err() != context.Canceled || context.Cause(c) != errBecause {
			t.Fatalf("Err %v, Cause %v", c.Err(), context.Cause(c))
		}
	}
}

// x_test.go TestInvalidDerivedFail.
func TestPortInvalidDerivedFail(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"New(nil)":     func() { cancellation.New(nil) },
		"New(bg, nil)": func() { cancellation.New(context.Background(), nil) },
		"New(tok, nil)": func() {
			cancellation.New(cancellation.New().Token(), nil)
		},
		"Register(nil)": func() { cancellation.New().Token().Register(nil) },
		"AfterFunc(nil)": func() {
			cancellation.New().Token().AfterFunc(nil)
		},
	} {
		v := recoveredValue(f)
		if s, _ := v.(string); !strings.HasPrefix(s, "cancellation: ") {
			t.Errorf("%s: panic %v, want one prefixed \"cancellation: \"", name, v)
		}
	}
}

func recoveredValue(fn func()) (v any) {
	defer func() { v = recover() }()
	fn()
	return
}

// The Cause table of x_test.go TestCause, with Tokens in the chain.
func TestPortCause(t *testing.T) {
	var (
		forever       = 1e6 * time.Second
		parentCause   = fmt.Errorf("parentCause")
		childCause    = fmt.Errorf("childCause")
		tooSlow       = fmt.Errorf("tooSlow")
		finishedEarly = fmt.Errorf("finishedEarly")
	)
	for _, test := range []struct {
		name       string
		ctx        func() context.Context
		err, cause error
	}{
		{"zero Token", func() context.Context { return cancellation.Token{} }, nil, nil},
		{"live", func() context.Context { return cancellation.New().Token() }, nil, nil},
		{"Cancel", func() context.Context {
			s := cancellation.New()
			s.Cancel()
			return s.Token()
		}, context.Canceled, context.Canceled},
		{"CancelCause", func() context.Context {
			s := cancellation.New()
			s.CancelCause(parentCause)
			return s.Token()
		}, context.Canceled, parentCause},
		{"CancelCause nil", func() context.Context {
			s := cancellation.New()
			s.CancelCause(nil)
			return s.Token()
		}, context.Canceled, context.Canceled},
		{"Token child: parent cause before child", func() context.Context {
			p := cancellation.New()
			c := cancellation.New(p.Token())
			p.CancelCause(parentCause)
			c.CancelCause(childCause)
			return c.Token()
		}, context.Canceled, parentCause},
		{"Token child: parent cause after child", func() context.Context {
			p := cancellation.New()
			c := cancellation.New(p.Token())
			c.CancelCause(childCause)
			p.CancelCause(parentCause)
			return c.Token()
		}, context.Canceled, childCause},
		{"Token child: parent cause before nil", func() context.Context {
			p := cancellation.New()
			c := cancellation.New(p.Token())
			p.CancelCause(parentCause)
			c.Cancel()
			return c.Token()
		}, context.Canceled, parentCause},
		{"Token child: parent Cancel before child cause", func() context.Context {
			p := cancellation.New()
			c := cancellation.New(p.Token())
			p.Cancel()
			c.CancelCause(childCause)
			return c.Token()
		}, context.Canceled, context.Canceled},
		{"stdlib child of a Token: parent cause before child", func() context.Context {
			p := cancellation.New()
			c, cancel := context.WithCancelCause(p.Token())
			p.CancelCause(parentCause)
			cancel(childCause)
			return c
		}, context.Canceled, parentCause},
		{"stdlib child of a Token: parent cause after child", func() context.Context {
			p := cancellation.New()
			c, cancel := context.WithCancelCause(p.Token())
			cancel(childCause)
			p.CancelCause(parentCause)
			return c
		}, context.Canceled, childCause},
		{"Token child of a stdlib context: parent cause before child", func() context.Context {
			p, cancel := context.WithCancelCause(context.Background())
			c := cancellation.New(p)
			cancel(parentCause)
			<-c.Token().Done() // asynchronous: documented difference
			c.CancelCause(childCause)
			return c.Token()
		}, context.Canceled, parentCause},
		{"Token child of a stdlib context: parent cause after child", func() context.Context {
			p, cancel := context.WithCancelCause(context.Background())
			c := cancellation.New(p)
			c.CancelCause(childCause)
			cancel(parentCause)
			return c.Token()
		}, context.Canceled, childCause},
		{"CancelAfter", func() context.Context {
			s := cancellation.New()
			s.CancelAfter(0)
			s.Cancel()
			return s.Token()
		}, context.DeadlineExceeded, context.DeadlineExceeded},
		{"CancelAfter canceled", func() context.Context {
			s := cancellation.New()
			s.CancelAfter(forever)
			s.Cancel()
			return s.Token()
		}, context.Canceled, context.Canceled},
		{"CancelAfterCause", func() context.Context {
			s := cancellation.New()
			s.CancelAfterCause(0, tooSlow)
			s.Cancel()
			return s.Token()
		}, context.DeadlineExceeded, tooSlow},
		{"CancelAfterCause canceled", func() context.Context {
			s := cancellation.New()
			s.CancelAfterCause(forever, tooSlow)
			s.Cancel()
			return s.Token()
		}, context.Canceled, context.Canceled},
		{"CancelAfterCause stacked", func() context.Context {
			p := cancellation.New()
			c := cancellation.New(p.Token())
			c.CancelAfterCause(0, tooSlow)
			p.CancelCause(finishedEarly)
			return c.Token()
		}, context.DeadlineExceeded, tooSlow},
		{"CancelAfterCause stacked canceled", func() context.Context {
			p := cancellation.New()
			c := cancellation.New(p.Token())
			c.CancelAfterCause(forever, tooSlow)
			p.CancelCause(finishedEarly)
			return c.Token()
		}, context.Canceled, finishedEarly},
		{"WithTimeoutCause under a Token, stacked", func() context.Context {
			p := cancellation.New()
			c, cancel := context.WithTimeoutCause(p.Token(), 0, tooSlow)
			t.Cleanup(cancel)
			p.CancelCause(finishedEarly)
			return c
		}, context.DeadlineExceeded, tooSlow},
		{"WithTimeoutCause under a Token, stacked canceled", func() context.Context {
			p := cancellation.New()
			c, cancel := context.WithTimeoutCause(p.Token(), forever, tooSlow)
			t.Cleanup(cancel)
			p.CancelCause(finishedEarly)
			return c
		}, context.Canceled, finishedEarly},
		{"timed-out Token parent", func() context.Context {
			p := cancellation.New()
			c := cancellation.New(p.Token())
			p.SetDeadlineCause(time.Now().Add(-time.Second), tooSlow)
			return c.Token()
		}, context.DeadlineExceeded, tooSlow},
		{"WithValue over a canceled Token", func() context.Context {
			s := cancellation.New()
			s.CancelCause(parentCause)
			return context.WithValue(s.Token(), portKey1(1), 1)
		}, context.Canceled, parentCause},
		{"WithoutCancel canceled", func() context.Context {
			s := cancellation.New()
			c := context.WithoutCancel(s.Token())
			s.CancelCause(finishedEarly)
			return c
		}, nil, nil},
		{"WithoutCancel timeout", func() context.Context {
			s := cancellation.New()
			s.CancelAfterCause(0, tooSlow)
			return context.WithoutCancel(s.Token())
		}, nil, nil},
		{"Token parent of custom context not canceled", func() context.Context {
			p := cancellation.New()
			c, cancel := newCustomContext(p.Token())
			cancel()
			return c
		}, context.Canceled, context.Canceled},
		{"Token parent of custom context canceled before", func() context.Context {
			p := cancellation.New()
			c, cancel := newCustomContext(p.Token())
			p.CancelCause(parentCause)
			cancel()
			return c
		}, context.Canceled, parentCause},
		{"Token parent of custom context canceled after", func() context.Context {
			p := cancellation.New()
			c, cancel := newCustomContext(p.Token())
			cancel()
			p.CancelCause(parentCause)
			return c
		}, context.Canceled, parentCause}, // as with context: Cause cannot tell which came first
		{"Token child of custom context", func() context.Context {
			p := cancellation.New()
			cc, cancel := newCustomContext(p.Token())
			c := cancellation.New(cc)
			p.CancelCause(parentCause)
			cancel()
			<-c.Token().Done()
			return c.Token()
		}, context.Canceled, parentCause},
	} {
		t.Run(test.name, func(t *testing.T) {
			t.Parallel()
			ctx := test.ctx()
			if got := ctx.Err(); got != test.err {
				t.Errorf("Err() = %v want %v", got, test.err)
			}
			if got := context.Cause(ctx); got != test.cause {
				t.Errorf("context.Cause = %v want %v", got, test.cause)
			}
			if tok, ok := ctx.(cancellation.Token); ok && tok.Cause() != test.cause {
				t.Errorf("Token.Cause = %v want %v", tok.Cause(), test.cause)
			}
		})
	}
}

// x_test.go TestCauseRace: polling Cause while another goroutine cancels.
func TestPortCauseRace(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	go s.CancelCause(errBecause)
	for {
		if err := context.Cause(s.Token()); err != nil {
			if err != errBecause || s.Token().Cause() != errBecause {
				t.Errorf("Cause = %v, want %v", err, errBecause)
			}
			break
		}
		runtime.Gosched()
	}
}

// x_test.go TestWithoutCancel, over a Token with a deadline.
func TestPortWithoutCancel(t *testing.T) {
	t.Parallel()
	s := cancellation.New(context.WithValue(context.Background(), portKey1(1), "value"))
	defer s.Cancel()
	s.CancelAfter(time.Hour)
	ctx := context.WithoutCancel(s.Token())
	if d, ok := ctx.Deadline(); !d.IsZero() || ok {
		t.Errorf("Deadline() = %v, %v want zero, false", d, ok)
	}
	if ctx.Done() != nil || ctx.Err() != nil {
		t.Errorf("Done() = %v, Err() = %v want nil, nil", ctx.Done(), ctx.Err())
	}
	if v := ctx.Value(portKey1(1)); v != "value" {
		t.Errorf("Value = %v", v)
	}
	// A Token under WithoutCancel never cancels.
	c := cancellation.New(ctx)
	s.Cancel()
	if c.Token().IsCanceled() {
		t.Error("New(WithoutCancel(tok)) canceled with tok")
	}
}

type customDoneContext struct {
	context.Context
	donec chan struct{}
}

func (c *customDoneContext) Done() <-chan struct{} { return c.donec }

// x_test.go TestCustomContextPropagation: a wrapper with its own Done
// channel is not the Token it embeds; its children follow its channel,
// with the Token's cause.
func TestPortCustomContextPropagation(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	donec := make(chan struct{})
	ctx2 := &customDoneContext{Context: s.Token(), donec: donec}
	std, cancel := context.WithCancel(ctx2)
	defer cancel()
	tok := cancellation.New(ctx2)
	defer tok.Cancel()
	s.CancelCause(errBecause)
	if isDone(std) || tok.Token().IsCanceled() {
		t.Error("children of the wrapper canceled before its own channel closed")
	}
	close(donec)
	for name, c := range map[string]context.Context{"stdlib": std, "Token": tok.Token()} {
		within(t, c.Done(), name)
		if c.Err() != context.Canceled || context.Cause(c) != errBecause {
			t.Errorf("%s: Err %v, Cause %v", name, c.Err(), context.Cause(c))
		}
	}
}

// customCauseContext is x_test.go's custom context without causes.
type customCauseContext struct {
	mu   sync.Mutex
	done chan struct{}
	err  error
}

func (c *customCauseContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *customCauseContext) Done() <-chan struct{}       { return c.done }
func (c *customCauseContext) Value(any) any               { return nil }
func (c *customCauseContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
func (c *customCauseContext) cancel() {
	c.mu.Lock()
	c.err = context.Canceled
	close(c.done)
	c.mu.Unlock()
}

// x_test.go TestCustomContextCause, with a Token child.
func TestPortCustomContextCause(t *testing.T) {
	t.Parallel()
	ccc := &customCauseContext{done: make(chan struct{})}
	s := cancellation.New(ccc)
	s.CancelCause(errBecause)
	if s.Token().Err() != context.Canceled || context.Cause(s.Token()) != errBecause {
		t.Errorf("Err %v, Cause %v", s.Token().Err(), context.Cause(s.Token()))
	}
	if ccc.Err() != nil || context.Cause(ccc) != nil {
		t.Error("the custom parent was canceled by its child")
	}
	ccc.cancel()
	if context.Cause(s.Token()) != errBecause || context.Cause(ccc) != context.Canceled {
		t.Errorf("after the parent: child Cause %v, parent Cause %v", context.Cause(s.Token()), context.Cause(ccc))
	}
	ccc = &customCauseContext{done: make(chan struct{})}
	s = cancellation.New(ccc)
	ccc.cancel()
	within(t, s.Token().Done(), "Token child of a custom context")
	if s.Token().Err() != context.Canceled || context.Cause(s.Token()) != context.Canceled {
		t.Errorf("Err %v, Cause %v", s.Token().Err(), context.Cause(s.Token()))
	}
}

// customContext is x_test.go's custom context made with context.AfterFunc.
type customContext struct {
	parent   context.Context
	doneOnce sync.Once
	donec    chan struct{}
	err      error
}

func newCustomContext(parent context.Context) (context.Context, context.CancelFunc) {
	c := &customContext{parent: parent, donec: make(chan struct{})}
	context.AfterFunc(parent, func() {
		c.doneOnce.Do(func() {
			c.err = parent.Err()
			close(c.donec)
		})
	})
	return c, func() {
		c.doneOnce.Do(func() {
			c.err = context.Canceled
			close(c.donec)
		})
	}
}

func (c *customContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }
func (c *customContext) Done() <-chan struct{}       { return c.donec }
func (c *customContext) Value(key any) any           { return c.parent.Value(key) }
func (c *customContext) Err() error {
	select {
	case <-c.donec:
		return c.err
	default:
		return nil
	}
}

// x_test.go TestAfterFunc*: context.AfterFunc on a Token. f runs on its own
// goroutine (Cancel does not wait for it), only after the cancellation, at
// once on a canceled Token, never after stop.
func TestPortContextAfterFunc(t *testing.T) {
	t.Parallel()
	t.Run("called after cancel", func(t *testing.T) {
		s := cancellation.New()
		donec := make(chan struct{})
		stop := context.AfterFunc(s.Token(), func() { close(donec) })
		if closed(donec) {
			t.Fatal("called before cancel")
		}
		s.Cancel()
		within(t, donec, "f")
		if stop() {
			t.Error("stop() = true after f ran")
		}
	})
	t.Run("called after timeout", func(t *testing.T) {
		s := cancellation.New()
		s.CancelAfter(shortDuration)
		donec := make(chan struct{})
		context.AfterFunc(s.Token(), func() { close(donec) })
		within(t, donec, "f")
	})
	t.Run("called immediately", func(t *testing.T) {
		s := cancellation.New()
		s.Cancel()
		donec := make(chan struct{})
		context.AfterFunc(s.Token(), func() { close(donec) })
		within(t, donec, "f")
	})
	t.Run("not called after stop", func(t *testing.T) {
		s := cancellation.New()
		ran := make(chan struct{})
		stop := context.AfterFunc(s.Token(), func() { close(ran) })
		if !stop() {
			t.Fatal("stop() = false")
		}
		s.Cancel()
		if closed(ran) || stop() {
			t.Error("f ran after stop, or second stop() = true")
		}
		if n := cancellation.ListLen(s); n != 0 {
			t.Errorf("%d registrations left", n)
		}
	})
	t.Run("called asynchronously", func(t *testing.T) {
		s := cancellation.New()
		donec := make(chan struct{})
		stop := context.AfterFunc(s.Token(), func() { donec <- struct{}{} })
		defer stop()
		s.Cancel() // returns while f blocks
		within(t, donec, "f")
	})
	// Difference: the Token.AfterFunc method (which context.AfterFunc and
	// context.WithCancel call) runs f synchronously inside Cancel, like
	// Register; that is what makes stdlib children canceled before Cancel
	// returns.
	t.Run("Token.AfterFunc is synchronous", func(t *testing.T) {
		s := cancellation.New()
		ran := false
		s.Token().AfterFunc(func() { ran = true })
		s.Cancel()
		if !ran {
			t.Error("Token.AfterFunc's f had not run when Cancel returned")
		}
	})
}

// afterfunc_test.go: a context with an AfterFunc method (a Token) as the
// parent of stdlib contexts: they are canceled through it, and canceling
// them (or stopping context.AfterFunc) unregisters them.
func TestPortAfterFuncParent(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	tok := s.Token()
	c1, cancel1 := context.WithCancel(tok)
	_, cancel2 := context.WithTimeout(tok, veryLongDuration)
	stop := context.AfterFunc(tok, func() {})
	if n := cancellation.ListLen(s); n != 3 {
		t.Errorf("after WithCancel, WithTimeout, AfterFunc: %d registrations, want 3", n)
	}
	cancel1()
	cancel2()
	stop()
	if n := cancellation.ListLen(s); n != 0 {
		t.Errorf("after canceling and stopping them: %d registrations, want 0", n)
	}
	c3, cancel3 := context.WithCancel(tok)
	defer cancel3()
	c4, cancel4 := context.WithTimeout(tok, veryLongDuration)
	defer cancel4()
	s.Cancel()
	if !isDone(c3) || !isDone(c4) || c1.Err() != context.Canceled {
		t.Error("stdlib children not canceled synchronously by the Token")
	}
}

// context_test.go XTestParentFinishesChild, XTestChildFinishesFirst,
// XTestCancelRemoves: a parent Token holds one link per live child, drops
// it when the child is canceled first, and cancels the rest.
func TestPortParentAndChildren(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	tok := p.Token()
	tc := cancellation.New(tok)
	sc, scancel := context.WithCancel(tok)
	defer scancel()
	tt := cancellation.New(tok)
	tt.CancelAfter(veryLongDuration)
	st, stcancel := context.WithTimeout(tok, veryLongDuration)
	defer stcancel()
	grand := cancellation.New(tc.Token())
	if n := cancellation.ListLen(p); n != 4 {
		t.Errorf("parent holds %d links, want 4", n)
	}
	// A child that finishes first leaves the parent's list.
	tt.Cancel()
	stcancel()
	if n := cancellation.ListLen(p); n != 2 {
		t.Errorf("after two children finished first: %d links, want 2", n)
	}
	if tok.IsCanceled() {
		t.Error("a child canceled its parent")
	}
	p.Cancel()
	for name, c := range map[string]context.Context{"Token child": tc.Token(), "stdlib child": sc, "grandchild": grand.Token()} {
		if !isDone(c) || c.Err() != context.Canceled {
			t.Errorf("%s: done %v, Err %v", name, isDone(c), c.Err())
		}
	}
	if n := cancellation.ListLen(p) + cancellation.ListLen(tc); n != 0 {
		t.Errorf("%d links left after cancellation", n)
	}
	if st.Err() != context.Canceled {
		t.Errorf("stdlib timeout child: Err %v", st.Err())
	}
}

// context_test.go XTestCustomContextGoroutines: which links cost a goroutine.
// Tokens and wrapped Tokens as parents of Tokens, and Tokens as parents of
// stdlib contexts, cost none. A context the packages do not know (here: one
// with its own Done channel) costs one, as it does with context alone.
func TestPortLinkGoroutines(t *testing.T) {
	p := cancellation.New()
	defer p.Cancel()
	tok := p.Token()
	// count runs f 20 times and reports how many goroutines that added
	// (other tests' goroutines may still be ending: it is a lower bound).
	count := func(f func()) int {
		before := runtime.NumGoroutine()
		for range 20 {
			f()
		}
		return runtime.NumGoroutine() - before
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for what, f := range map[string]func(){
		"New(tok)":               func() { cancellation.New(tok) },
		"New(WithValue(tok))":    func() { cancellation.New(context.WithValue(tok, portKey1(1), 1)) },
		"New(otherContext{tok})": func() { cancellation.New(otherContext{tok}) },
		"context.WithCancel(tok)": func() {
			_, c := context.WithCancel(tok)
			cancels = append(cancels, c)
		},
		"context.WithTimeout(tok)": func() {
			_, c := context.WithTimeout(tok, time.Hour)
			cancels = append(cancels, c)
		},
	} {
		if n := count(f); n > 0 {
			t.Errorf("%s: %d goroutines for 20, want none", what, n)
		}
	}
	donec := make(chan struct{})
	defer func() {
		p.Cancel() // first: a context whose Done is closed must have an Err
		close(donec)
	}()
	if n := count(func() { cancellation.New(&customDoneContext{tok, donec}) }); n < 10 {
		t.Errorf("New(customDoneContext): %d goroutines for 20, want one each", n)
	}
}

// x_test.go TestContextErrDoneRace (issue 75533): once Err (or IsCanceled)
// reports the cancellation, Done is closed.
func TestPortErrDoneRace(t *testing.T) {
	t.Parallel()
	for range 100 {
		s := cancellation.New()
		tok := s.Token()
		donec := tok.Done()
		go s.Cancel()
		for tok.Err() == nil {
			runtime.Gosched()
		}
		if !closed(donec) {
			t.Fatal("Err is non-nil, but Done is not closed")
		}
		s2 := cancellation.New()
		tok2 := s2.Token()
		donec = tok2.Done()
		go s2.Cancel()
		for !tok2.IsCanceled() {
			runtime.Gosched()
		}
		if !closed(donec) {
			t.Fatal("IsCanceled is true, but Done is not closed")
		}
	}
}
