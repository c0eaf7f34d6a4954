package config

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Limits on what the worker reads from a file. Every file it reads is named by an operator, and a wrong path
// (/dev/zero, a log file, a disk image) must end in a message, not in a process that grows until the kernel
// kills it and its neighbours. The limits are far above what a real file of each kind holds.
const (
	// MaxConfigBytes bounds the configuration file (a real one is a few kilobytes).
	MaxConfigBytes = 1 << 20
	// MaxCertificateBytes bounds certificate, key, PFX and CA bundle files (a PFX with its chain is ~10 KiB,
	// a full public CA bundle ~250 KiB).
	MaxCertificateBytes = 1 << 20
	// MaxSecretBytes bounds client secret, password, federated token and server token files.
	MaxSecretBytes = 64 << 10
)

// ErrTooLarge is wrapped by ReadFile's error for a file beyond its limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads file, named by the configuration field field (for messages), refusing anything beyond limit
// bytes. It reads at most limit+1 bytes whatever the file is (a device or a pipe never ending included), so
// memory stays bounded. The error names the field, the file and the limit.
func ReadFile(field, file string, limit int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", field, file, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %s is larger than %s, the most the worker reads for it; is it the right file? (%w)", field, file, byteSize(limit), ErrTooLarge)
	}
	return data, nil
}

// byteSize prints a limit as people write it (1 MiB, 64 KiB).
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// maxValueRunes is how much of a value a message repeats: enough to recognise it, never a whole 20 MB line.
const maxValueRunes = 120

// Clip shortens s for a message: at most maxValueRunes characters, then "…" and how long s really was.
func Clip(s string) string {
	if len(s) <= maxValueRunes {
		return s
	}
	n := 0
	for i := range s {
		if n == maxValueRunes {
			return fmt.Sprintf("%s… (%d bytes in all)", s[:i], len(s))
		}
		n++
	}
	return s
}

// clipArgs clips every string argument of a message, unless the format passes on a message built elsewhere
// ("%s", "%v"; its builder clips its values).
func clipArgs(format string, args []any) []any {
	if format == "%s" || format == "%v" {
		return args
	}
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > maxValueRunes {
			args[i] = Clip(s)
		}
	}
	return args
}
