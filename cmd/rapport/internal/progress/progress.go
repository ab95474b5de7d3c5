// Package progress draws the command line's progress bars; the packages
// below cmd/ report counts through callbacks and draw nothing.
package progress

import (
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Rebuild returns a progress callback for projections.Engine.Rebuild that
// draws a bar on w (the CLI passes os.Stderr), and a function that
// completes the bar. Progress bars live only in the binary: the engine
// reports counts, the command line draws them.
func Rebuild(w io.Writer, description string) (progress func(done, total int64), finish func()) {
	var (
		mu  sync.Mutex
		bar *progressbar.ProgressBar
		max int64
	)
	progress = func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if bar == nil {
			max = total
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(description),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("events"),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionFullWidth(),
			)
		}
		if total != max {
			max = total
			bar.ChangeMax64(total)
		}
		_ = bar.Set64(done)
	}
	finish = func() {
		mu.Lock()
		defer mu.Unlock()
		if bar != nil {
			_ = bar.Finish()
			_, _ = io.WriteString(w, "\n")
		}
	}
	return progress, finish
}
