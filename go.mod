module github.com/go-cancellation/cancellation

go 1.26
