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

// ParseMeta parses a .part.meta and returns its missing ranges.
func ParseMeta(b []byte) (missing [][2]int64, size int64, err error) {
	m, err := parseMeta(b)
	for _, s := range m.Missing {
		missing = append(missing, [2]int64{s.Start, s.End})
	}
	return missing, m.Size, err
}
