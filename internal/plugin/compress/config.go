package compress

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"sluice/internal/plugin"
)

// Config is compress's config. Omitted fields keep the defaults of [DefaultConfig].
type Config struct {
	// Encodings are the codings offered, most preferred first: "gzip", "br" (brotli) and
	// "zstd". The client's Accept-Encoding weights decide; this order breaks their ties.
	// Default [zstd, gzip, br]: brotli last, as Go's brotli costs several times the CPU
	// of the others (docs/design.md); an empty list is an error.
	Encodings []string `yaml:"encodings"`
	// Levels are the compression levels, per coding.
	Levels Levels `yaml:"levels"`
	// Types lists the media types compressed (Content-Type without parameters,
	// case-insensitive): "text/html", "text/*" (a whole type), "application/*+json" (a
	// structured-syntax suffix) or "*" (all). Event streams and other streaming types are
	// never compressed, whatever is listed here. Default: DefaultTypes; an empty list is an
	// error.
	Types []string `yaml:"types"`
	// MinSize is the least Content-Length, in bytes, of a compressed response: smaller
	// ones are sent as they are. A response without a Content-Length (chunked, or until
	// close) is compressed whatever its size: the decision is made before its first byte.
	// 0: any size. Default 1024.
	MinSize int64 `yaml:"min_size"`
}

// Levels are the compression level of each coding: higher is smaller and slower.
type Levels struct {
	// Gzip is gzip's level, 1 (fastest) to 9 (smallest). Default 5.
	Gzip int `yaml:"gzip"`
	// Brotli is brotli's quality, 0 (fastest) to 11 (smallest). Default 4.
	Brotli int `yaml:"br"`
	// Zstd is zstd's level, 1 to 22, mapped to the encoder's four speeds as its
	// EncoderLevelFromZstd does: 1-2 fastest, 3-5 default, 6-9 better, 10-22 best.
	// Default 3.
	Zstd int `yaml:"zstd"`
}

// DefaultTypes are the media types compressed when the config lists none: text and the
// usual structured text formats. Images other than SVG, audio, video, archives and fonts
// in WOFF/WOFF2 are already compressed.
var DefaultTypes = []string{
	"text/*",
	"application/json", "application/*+json",
	"application/xml", "application/*+xml",
	"application/javascript", "application/x-javascript", "application/ecmascript",
	"application/wasm", "application/x-ndjson", "application/graphql-response+json",
	"image/svg+xml", "image/x-icon", "font/ttf", "font/otf",
}

// DefaultConfig returns the defaults, applied before a config is decoded.
func DefaultConfig() Config {
	return Config{
		Encodings: []string{"zstd", "gzip", "br"},
		Levels:    Levels{Gzip: 5, Brotli: 4, Zstd: 3},
		Types:     slices.Clone(DefaultTypes),
		MinSize:   1024,
	}
}

// settings are a checked Config.
type settings struct {
	prefer  []Coding
	levels  [numCodings]int
	types   []mediaType
	minSize int64
}

// check turns c into settings, or returns every problem, each naming its field.
func (c *Config) check(b *plugin.Build) (settings, error) {
	var errs []error
	s := settings{minSize: c.MinSize}
	if len(c.Encodings) == 0 {
		errs = append(errs, b.Errorf("encodings", "list at least one of gzip, br, zstd"))
	}
	for i, name := range c.Encodings {
		k := codingOf([]byte(name))
		switch {
		case k == None || strings.EqualFold(name, "x-gzip"):
			errs = append(errs, b.Errorf(fmt.Sprintf("encodings[%d]", i), "%q is not one of gzip, br, zstd", name))
		case slices.Contains(s.prefer, k):
			errs = append(errs, b.Errorf(fmt.Sprintf("encodings[%d]", i), "%q is listed twice", name))
		default:
			s.prefer = append(s.prefer, k)
		}
	}
	levels := []struct {
		field    string
		v        int
		min, max int
		k        Coding
	}{
		{"levels.gzip", c.Levels.Gzip, 1, 9, Gzip},
		{"levels.br", c.Levels.Brotli, 0, 11, Brotli},
		{"levels.zstd", c.Levels.Zstd, 1, 22, Zstd},
	}
	for _, l := range levels {
		if l.v < l.min || l.v > l.max {
			errs = append(errs, b.Errorf(l.field, "%d is out of range %d to %d", l.v, l.min, l.max))
		}
		s.levels[l.k] = l.v
	}
	if len(c.Types) == 0 {
		errs = append(errs, b.Errorf("types", "list at least one media type (omit the field for the defaults)"))
	}
	for i, t := range c.Types {
		mt, ok := parseMediaType(t)
		if !ok {
			errs = append(errs, b.Errorf(fmt.Sprintf("types[%d]", i), "%q is not a media type (type/subtype, type/*, type/*+suffix or *)", t))
			continue
		}
		s.types = append(s.types, mt)
	}
	if c.MinSize < 0 {
		errs = append(errs, b.Errorf("min_size", "%d is negative (0: any size)", c.MinSize))
	}
	return s, errors.Join(errs...)
}
