package cancelhttp_test

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/cancelhttp"
)

func TestParseConnectTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"1", time.Millisecond, true},
		{"1500", 1500 * time.Millisecond, true},
		{"0050", 50 * time.Millisecond, true},
		{"9999999999", 9999999999 * time.Millisecond, true},
		{"", 0, false},
		{"12345678901", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"１", 0, false}, // a full-width digit
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			t.Parallel()
			got, err := cancelhttp.ParseConnectTimeout(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("ParseConnectTimeout(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
				}
				return
			}
			var he *cancelhttp.HeaderError
			if !errors.As(err, &he) || he.Header != "Connect-Timeout-Ms" || he.Value != tt.in {
				t.Errorf("ParseConnectTimeout(%q) = %v, %v; want a HeaderError", tt.in, got, err)
			}
		})
	}
}

func TestParseGrpcTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0n", 0, true},
		{"1H", time.Hour, true},
		{"2M", 2 * time.Minute, true},
		{"3S", 3 * time.Second, true},
		{"4m", 4 * time.Millisecond, true},
		{"5u", 5 * time.Microsecond, true},
		{"6n", 6 * time.Nanosecond, true},
		{"99999999n", 99999999, true},
		{"00000001S", time.Second, true},
		{"99999999H", math.MaxInt64, true}, // saturates
		{"2562047H", 2562047 * time.Hour, true},
		{"2562048H", math.MaxInt64, true},
		{"", 0, false},
		{"1", 0, false},
		{"S", 0, false},
		{"1s", 0, false},
		{"1h", 0, false},
		{"1x", 0, false},
		{"123456789S", 0, false},
		{"-1S", 0, false},
		{"+1S", 0, false},
		{"1 S", 0, false},
		{"1.5S", 0, false},
		{"1SS", 0, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			t.Parallel()
			got, err := cancelhttp.ParseGrpcTimeout(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("ParseGrpcTimeout(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
				}
				return
			}
			var he *cancelhttp.HeaderError
			if !errors.As(err, &he) || he.Header != "Grpc-Timeout" || he.Value != tt.in {
				t.Errorf("ParseGrpcTimeout(%q) = %v, %v; want a HeaderError", tt.in, got, err)
			}
		})
	}
}

func TestParseAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		cancelhttp.ParseConnectTimeout("1500")
		cancelhttp.ParseGrpcTimeout("250m")
	})
	if allocs != 0 {
		t.Errorf("parsing a valid header allocates %v times, want 0", allocs)
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func FuzzParseConnectTimeout(f *testing.F) {
	for _, s := range []string{"0", "1", "1500", "9999999999", "12345678901", "", "-1", "+1", "1.5", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := cancelhttp.ParseConnectTimeout(s)
		valid := len(s) >= 1 && len(s) <= 10 && isDigits(s)
		if !valid {
			var he *cancelhttp.HeaderError
			if !errors.As(err, &he) || he.Value != s || he.Header != cancelhttp.ConnectTimeoutHeader {
				t.Fatalf("ParseConnectTimeout(%q) = %v, %v; want a HeaderError", s, d, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseConnectTimeout(%q) = %v", s, err)
		}
		ms, _ := strconv.ParseInt(s, 10, 64)
		if d != time.Duration(ms)*time.Millisecond {
			t.Fatalf("ParseConnectTimeout(%q) = %v, want %d ms", s, d, ms)
		}
		// What the Transport sends parses back to the same value (at least 1ms).
		if v, ok := cancelhttp.FormatConnectTimeout(d); ok {
			back, err := cancelhttp.ParseConnectTimeout(v)
			if err != nil || back != max(d, time.Millisecond) {
				t.Fatalf("format(%v) = %q parses to %v, %v", d, v, back, err)
			}
		}
	})
}

func FuzzParseGrpcTimeout(f *testing.F) {
	for _, s := range []string{"0n", "1H", "99999999H", "100m", "5u", "1", "S", "1x", "123456789S", "-1S", "1.5S"} {
		f.Add(s)
	}
	units := map[byte]int64{'H': int64(time.Hour), 'M': int64(time.Minute), 'S': int64(time.Second),
		'm': int64(time.Millisecond), 'u': int64(time.Microsecond), 'n': 1}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := cancelhttp.ParseGrpcTimeout(s)
		var unit int64
		valid := len(s) >= 2 && len(s) <= 9 && isDigits(s[:len(s)-1])
		if valid {
			unit, valid = units[s[len(s)-1]]
		}
		if !valid {
			var he *cancelhttp.HeaderError
			if !errors.As(err, &he) || he.Value != s || he.Header != cancelhttp.GrpcTimeoutHeader {
				t.Fatalf("ParseGrpcTimeout(%q) = %v, %v; want a HeaderError", s, d, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseGrpcTimeout(%q) = %v", s, err)
		}
		// Reference: exact arithmetic, saturated at the largest Duration.
		n, _ := new(big.Int).SetString(s[:len(s)-1], 10)
		want := n.Mul(n, big.NewInt(unit))
		if want.Cmp(big.NewInt(math.MaxInt64)) > 0 {
			want.SetInt64(math.MaxInt64)
		}
		if int64(d) != want.Int64() {
			t.Fatalf("ParseGrpcTimeout(%q) = %d, want %v", s, int64(d), want)
		}
	})
}
