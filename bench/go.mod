module github.com/go-cancellation/cancellation/bench

go 1.26

replace github.com/go-cancellation/cancellation => ../
