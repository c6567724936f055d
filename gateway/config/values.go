package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string: "5s",
// "1m30s", "250ms", or "0" (an integer 0 is accepted too). Negative
// durations are an error.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	v, err := time.ParseDuration(s)
	if err != nil && strings.Trim(s, "0123456789") == "" && s != "" {
		return fmt.Errorf(`invalid duration %q: a number needs a unit, e.g. "%ss"`, s, s)
	}
	if err != nil {
		return fmt.Errorf(`invalid duration %q: want e.g. "5s", "1m30s" or "0"`, s)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	d.Duration = v
	return nil
}

// MarshalText writes d as Go writes durations ("1m30s", "0s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ByteSize is a size in bytes, written "256B", "64KiB", "16MiB", "1GiB",
// "1TiB" (powers of 1024), "16kB"/"16KB", "16MB", "16GB", "16TB" (powers of
// 1000), or as a plain number of bytes: "4096" or the integer 4096. A space
// may separate the number and the unit. Negative sizes, fractions and sizes
// beyond 2^63-1 bytes are errors.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

var sizeUnits = map[string]int64{
	"B":   1,
	"kB":  1e3,
	"KB":  1e3,
	"MB":  1e6,
	"GB":  1e9,
	"TB":  1e12,
	"KiB": 1 << 10,
	"MiB": 1 << 20,
	"GiB": 1 << 30,
	"TiB": 1 << 40,
}

// UnmarshalText parses a size such as "16MiB".
func (z *ByteSize) UnmarshalText(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("invalid size %q: must not be negative", s)
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	mult, ok := int64(1), true
	if unit := strings.TrimLeft(s[i:], " "); unit != "" {
		mult, ok = sizeUnits[unit]
	}
	if i == 0 || !ok {
		return fmt.Errorf(`invalid size %q: want e.g. "256B", "64KiB", "16MiB" or a number of bytes`, s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return fmt.Errorf("invalid size %q: too large", s)
	}
	*z = ByteSize(n * mult)
	return nil
}

// String writes z in the largest binary unit that divides it ("16MiB"),
// else in bytes ("1000B").
func (z ByteSize) String() string {
	for _, u := range []struct {
		name string
		n    ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if z != 0 && z%u.n == 0 {
			return strconv.FormatInt(int64(z/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(z), 10) + "B"
}

// MarshalText writes z as String does; UnmarshalText reads it back.
func (z ByteSize) MarshalText() ([]byte, error) { return []byte(z.String()), nil }
