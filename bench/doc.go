// Package bench holds side-by-side benchmarks of cancellation against
// context and third-party peers. It is a separate module so that benchmark-only
// dependencies never reach users of the library.
package bench
