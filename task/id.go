package task

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// crockford is Crockford's base32 alphabet: URL-safe, no I, L, O or U, and
// in ASCII order, so ids compare as strings in the order of their bytes.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var idGen struct {
	sync.Mutex
	ms   uint64
	rand [10]byte
}

// NewID returns a new task id: "t_" and 26 characters of Crockford base32
// encoding 48 bits of milliseconds since the Unix epoch and 80 random bits
// (a ULID). Ids are unique, URL-safe, and sort as strings by creation
// time; ids made by one process in the same millisecond sort in the order
// they were made (the random part is incremented). It is safe for
// concurrent use and never blocks beyond a short lock.
func NewID() string { return newID(time.Now()) }

func newID(now time.Time) string {
	ms := uint64(now.UnixMilli())
	idGen.Lock()
	if ms <= idGen.ms {
		ms = idGen.ms
		// Increment the 80-bit random part; on the (astronomically rare)
		// overflow move to the next millisecond.
		for i := len(idGen.rand) - 1; i >= 0; i-- {
			idGen.rand[i]++
			if idGen.rand[i] != 0 {
				break
			}
			if i == 0 {
				ms++
			}
		}
	} else {
		rand.Read(idGen.rand[:])
	}
	idGen.ms = ms
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	copy(b[6:], idGen.rand[:])
	idGen.Unlock()
	return "t_" + encode(b)
}

// encode writes 128 bits as 26 base32 characters, most significant first
// (the first character carries the top 3 bits).
func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ValidID reports whether id has the form of an id made by [NewID]. It
// never blocks.
func ValidID(id string) bool {
	if len(id) != 28 || id[:2] != "t_" || id[2] > '7' {
		return false
	}
	for i := 2; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') || c == 'I' || c == 'L' || c == 'O' || c == 'U' {
			return false
		}
	}
	return true
}
