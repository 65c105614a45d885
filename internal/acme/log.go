package acme

import (
	"context"
	"errors"
	"log/slog"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// certmagicLogger is the zap logger certmagic writes to: its warnings and errors go to log,
// the rest is dropped. Some of certmagic's failures reach nothing else: a storage check or
// lock that fails before an order (no cert_failed event, and no retry), a renewal that gives
// up, an OCSP staple that cannot be fetched.
func certmagicLogger(log *slog.Logger) *zap.Logger { return zap.New(&slogCore{log: log}) }

// quietMessages are certmagic messages not passed on: "tls-alpn challenge" is logged for
// every handshake that offers only acme-tls/1 when no challenge is pending, so anyone could
// fill the log with it (the server logs the failed handshake at debug level); "could not get
// certificate from issuer" repeats the cert_failed event's line (acme.go).
var quietMessages = []string{"tls-alpn challenge", "could not get certificate from issuer"}

// slogCore is a zapcore.Core writing to a slog.Logger at warning level.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(slices.Clip(c.fields), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) && !slices.Contains(quietMessages, e.Message) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write logs e with its fields; an entry whose error is a cancellation (a manager closed by
// a reload, with an order in progress) is dropped.
func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	args := make([]any, 0, 2*(len(c.fields)+len(fs)))
	for _, f := range append(slices.Clip(c.fields), fs...) {
		if f.Type == zapcore.SkipType {
			continue
		}
		if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType && errors.Is(err, context.Canceled) {
			return nil
		}
		f.AddTo(enc)
		args = append(args, f.Key, enc.Fields[f.Key])
	}
	c.log.Warn("acme: "+e.Message, args...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
