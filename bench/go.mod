module github.com/go-cancellation/cancellation/bench

go 1.26.0

replace github.com/go-cancellation/cancellation => ../

require github.com/go-cancellation/cancellation v0.0.0-00010101000000-000000000000

require golang.org/x/sys v0.48.0 // indirect
