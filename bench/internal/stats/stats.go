// Package stats holds what the benchmark commands share: medians, and the
// numbers of `go test -bench` output read back from text. Its functions are
// pure and safe for concurrent use.
package stats

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A Number is what Median takes: float64 values, or durations.
type Number interface{ ~int64 | ~float64 }

// Median returns the median of v (the mean of the two middle values for an
// even count), or 0 for an empty v. It does not modify v.
func Median[T Number](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// Samples are the numbers of `go test -bench` output: benchmark name
// (without "Benchmark" and the -GOMAXPROCS suffix) → unit ("ns/op",
// "allocs/op", a custom metric's unit) → one value per line read, in order.
type Samples map[string]map[string][]float64

// ParseBench reads `go test -bench` output (any number of runs, other lines
// ignored) and returns its numbers.
func ParseBench(r io.Reader) (Samples, error) {
	s := Samples{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		if s[m[1]] == nil {
			s[m[1]] = map[string][]float64{}
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				s[m[1]][f[i+1]] = append(s[m[1]][f[i+1]], v)
			}
		}
	}
	return s, sc.Err()
}
