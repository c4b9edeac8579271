package cancelhttp

// FormatConnectTimeout is exported for the fuzz tests.
var FormatConnectTimeout = formatConnectTimeout
