module github.com/go-cancellation/cancellation

go 1.26.0

require (
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.48.0
	golang.org/x/term v0.44.0
)
