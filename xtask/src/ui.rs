//! How xtask talks to the person (or CI job) running it: a spinner per step
//! on a terminal, plain lines otherwise, and every line on stderr so that
//! stdout stays free for `--json` documents.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Every spinner of the process draws through this, so that a line said
/// while one spins (a rate-limit wait announced in the middle of a deploy
/// step) is printed above it instead of through it.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// Prints `line` on stderr, above the spinners of `bars` when they show.
fn say(bars: &MultiProgress, line: &str) {
    // `println` prints nothing when the spinners are hidden (not a terminal).
    if bars.is_hidden() || bars.println(line).is_err() {
        eprintln!("{line}");
    }
}

#[derive(Clone, Copy)]
pub struct Ui {
    /// `--json`: no spinners, no colours; the result document goes to stdout.
    pub json: bool,
}

impl Ui {
    /// Runs `work` under a spinner titled `title`, then prints one line with
    /// the outcome and how long it took.
    pub fn step<T>(
        &self,
        title: &str,
        work: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let spinner = self.spinner(title);
        let result = work();
        spinner.finish_and_clear();
        let elapsed = format_duration(started.elapsed());
        match &result {
            Ok(_) => say(bars(), &format!("  ok    {title} ({elapsed})")),
            Err(_) => say(bars(), &format!("  FAIL  {title} ({elapsed})")),
        }
        result
    }

    /// A spinner that shows while long work runs; hidden when stderr is not a
    /// terminal or `--json` is set.
    pub fn spinner(&self, title: &str) -> ProgressBar {
        let spinner = if self.json {
            ProgressBar::hidden()
        } else {
            bars().add(ProgressBar::new_spinner())
        };
        spinner.set_style(
            ProgressStyle::with_template("  {spinner} {msg} {elapsed}").expect("static template"),
        );
        spinner.set_message(title.to_owned());
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    }

    /// A line of information for the person running the command, above
    /// any spinner showing.
    pub fn info(&self, line: impl AsRef<str>) {
        say(bars(), line.as_ref());
    }
}

pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else if d < Duration::from_secs(120) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

pub fn format_bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else if n < 1 << 30 {
        format!("{:.2} MiB", n as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", n as f64 / f64::from(1u32 << 30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_said_while_a_spinner_shows_is_printed_above_it_whole() {
        use indicatif::{InMemoryTerm, ProgressDrawTarget};

        let term = InMemoryTerm::new(10, 80);
        let bars =
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let spinner = bars.add(ProgressBar::new_spinner());
        spinner.set_message("find the zone example.com");
        spinner.tick();
        say(&bars, "Cloudflare asked to wait 42 s (rate limit); waiting");
        spinner.tick();
        let screen = term.contents();
        let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
        assert_eq!(
            lines.first().copied(),
            Some("Cloudflare asked to wait 42 s (rate limit); waiting"),
            "{screen}"
        );
        assert!(
            lines
                .get(1)
                .is_some_and(|l| l.ends_with("find the zone example.com")),
            "{screen}"
        );
    }

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(format_duration(Duration::from_millis(1300)), "1.3s");
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(2048), "2.0 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 / 2), "1.50 MiB");
        assert_eq!(format_bytes(6 << 30), "6.00 GiB");
    }
}
