package daemon

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func parseLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug":
		return zap.DebugLevel, nil
	case "info", "":
		return zap.InfoLevel, nil
	case "warn":
		return zap.WarnLevel, nil
	case "error":
		return zap.ErrorLevel, nil
	}
	return 0, fmt.Errorf("unknown log level %q", s)
}

// NewLogger returns tollgated's JSON logger at level (debug, info, warn, error), writing
// to stderr. Nothing the daemon logs is secret: it logs images, digests, policies and
// reasons, never keys' private material or registry credentials.
func NewLogger(level string) (*zap.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	// Sampling would hide denials in a burst of pod starts; the volume is bounded anyway.
	cfg.Sampling = nil
	return cfg.Build()
}
