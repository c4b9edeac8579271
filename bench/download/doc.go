// Package download benchmarks package download beside a plain
// http.Get + io.Copy, in process (small files: CI runs them once each).
// The 1 GiB comparison with curl, peak RSS and SIGINT-to-exit time are
// measured by ../download.sh with the programs in server/ and fetchbench/.
package download
