package node

import (
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// natsLogger sends the embedded server's log lines to zerolog. While the
// node stops, the server's errors about connections closing under it are
// expected and logged at debug level.
type natsLogger struct {
	log      zerolog.Logger
	stopping *atomic.Bool
}

func (l natsLogger) Noticef(format string, v ...any) { l.log.Info().Msg(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msg(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error().Msg(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any) {
	if l.stopping.Load() {
		l.log.Debug().Msg(fmt.Sprintf(format, v...))
		return
	}
	l.log.Error().Msg(fmt.Sprintf(format, v...))
}
func (l natsLogger) Debugf(format string, v ...any) { l.log.Debug().Msg(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any) { l.log.Trace().Msg(fmt.Sprintf(format, v...)) }
