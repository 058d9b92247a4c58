//! Download progress: a bar when stderr is a terminal, a log line every few seconds
//! otherwise (a daemon's journal should show that a 70 MB download is moving).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    label: String,
    total: Option<u64>,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    pub fn new(label: &str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar
        });
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            total,
            bar,
            started: now,
            last_log: now,
        }
    }

    /// `done` bytes have arrived so far.
    pub fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        tracing::trace!(source = %self.label, bytes = done, "received");
        if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001) / 1e6;
            match self.total {
                Some(t) => {
                    tracing::info!(source = %self.label, "downloaded {done}/{t} bytes ({:.0}%, {rate:.1} MB/s)", done as f64 * 100.0 / t.max(1) as f64)
                }
                None => {
                    tracing::info!(source = %self.label, "downloaded {done} bytes ({rate:.1} MB/s)")
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!(source = %self.label, secs = self.started.elapsed().as_secs_f64(), "download complete");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
