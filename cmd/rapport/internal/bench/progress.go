package bench

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

func newCountBar(w io.Writer, description string, total int64, unit string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionFullWidth(),
	)
}

// timeBar shows the progress of a phase that lasts a fixed time.
type timeBar struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	total time.Duration
}

func newTimeBar(w io.Writer, description string, total time.Duration) *timeBar {
	bar := progressbar.NewOptions64(int64(total/(100*time.Millisecond)),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
	)
	return &timeBar{w: w, bar: bar, total: total}
}

// run advances the bar with the clock until the returned stop is called.
func (b *timeBar) run() (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				_ = b.bar.Finish()
				fmt.Fprintln(b.w)
				return
			case <-t.C:
				_ = b.bar.Set64(min(int64(time.Since(start)/(100*time.Millisecond)), int64(b.total/(100*time.Millisecond))))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
