package sweep

import "fmt"

// failure is a sweep that cannot succeed as things stand (no treasury, dust, a reverted
// transfer): Sweep reports it as payments.sweep_failed and the message is acked. Code is the
// machine-readable part of the reason ("dust", "no_treasury", ...).
type failure struct {
	Code   string
	Detail string
}

func (f *failure) Error() string { return f.Code + ": " + f.Detail }

func fail(code, format string, args ...any) error {
	return &failure{Code: code, Detail: fmt.Sprintf(format, args...)}
}
