package cancellation

import (
	"sync/atomic"
	"unsafe"
)

// atomicU32 and atomicU64 are sync/atomic words that can also be initialized
// with a plain store (init) while the object holding them is not yet visible
// to other goroutines, which saves an atomic exchange on the hot paths of New
// and Register.
type atomicU32 struct{ v uint32 }

func (a *atomicU32) Load() uint32   { return atomic.LoadUint32(&a.v) }
func (a *atomicU32) Store(v uint32) { atomic.StoreUint32(&a.v, v) }
func (a *atomicU32) init(v uint32)  { a.v = v }

type atomicU64 struct{ v uint64 }

func (a *atomicU64) Load() uint64   { return atomic.LoadUint64(&a.v) }
func (a *atomicU64) Store(v uint64) { atomic.StoreUint64(&a.v, v) }
func (a *atomicU64) CompareAndSwap(old, new uint64) bool {
	return atomic.CompareAndSwapUint64(&a.v, old, new)
}
func (a *atomicU64) init(v uint64) { a.v = v }

// atomicPtr is a sync/atomic pointer that can also be initialized with a
// plain store while its holder is not yet visible to other goroutines.
type atomicPtr[T any] struct{ p unsafe.Pointer }

func (a *atomicPtr[T]) Load() *T   { return (*T)(atomic.LoadPointer(&a.p)) }
func (a *atomicPtr[T]) Store(v *T) { atomic.StorePointer(&a.p, unsafe.Pointer(v)) }
func (a *atomicPtr[T]) init(v *T)  { a.p = unsafe.Pointer(v) }
