package natsstore_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/go-cancellation/cancellation/internal/doccheck"
	"github.com/go-cancellation/cancellation/internal/natstest"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/go-cancellation/cancellation/task/storetest"
)

func TestMain(m *testing.M) { os.Exit(natstest.Main(m)) }

var buckets atomic.Int64

// newStore returns a Store on a bucket of its own, closed when t ends.
func newStore(t *testing.T) *natsstore.Store {
	t.Helper()
	return natstest.Store(t, natsstore.Options{Bucket: fmt.Sprintf("test%d", buckets.Add(1))})
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) task.Store { return newStore(t) })
}

func TestDocs(t *testing.T) {
	doccheck.Check(t, ".")
}
