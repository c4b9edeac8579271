package download

// Internals exported for the external tests and fuzz targets.

var (
	ContentDispositionName = contentDispositionName
	SanitizeName           = sanitizeName
	ParseRetryAfter        = parseRetryAfter
)

func ParseContentRange(s string) (start, end, total int64, err error) {
	cr, err := parseContentRange(s)
	return cr.Start, cr.End, cr.Total, err
}
