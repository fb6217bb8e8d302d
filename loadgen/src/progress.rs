//! The optional live progress line.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval};

use crate::stats::Recorder;

/// How often the progress line is refreshed.
const REFRESH: Duration = Duration::from_millis(250);

/// Whether a run shows a live progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// No output (tests, scripted runs).
    #[default]
    Hidden,
    /// A live line on stderr (via `indicatif`, hidden when stderr is not a terminal) with the
    /// elapsed time, offered rate, achieved rate over the last second, p99 so far and the error
    /// count, refreshed about four times a second by a separate task. It reads the shared
    /// counters briefly and does not delay sending or recording.
    Bar,
}

/// Keeps the progress task alive; dropping it stops the task and clears the line.
pub(crate) struct ProgressGuard {
    bar: ProgressBar,
    task: JoinHandle<()>,
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

impl Progress {
    /// Starts the refresh task for a run recorded by `recorder`.
    pub(crate) fn start(
        self,
        recorder: Arc<Recorder>,
        offered: Option<f64>,
    ) -> Option<ProgressGuard> {
        match self {
            Progress::Hidden => None,
            Progress::Bar => {
                let bar = ProgressBar::new_spinner();
                let task = tokio::spawn(refresh(bar.clone(), recorder, offered));
                Some(ProgressGuard { bar, task })
            }
        }
    }
}

async fn refresh(bar: ProgressBar, recorder: Arc<Recorder>, offered: Option<f64>) {
    let offered = match offered {
        Some(rate) => format!("offered {rate:.0} tx/s"),
        None => "closed loop".to_owned(),
    };
    let mut ticker = interval(REFRESH);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // (time, committed) samples covering roughly the last second.
    let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let snap = recorder.snapshot();
        window.push_back((now, snap.succ));
        while window.len() > 5 {
            window.pop_front();
        }
        let achieved = match window.front() {
            Some(&(t, succ)) if now > t => (snap.succ - succ) as f64 / (now - t).as_secs_f64(),
            _ => 0.0,
        };
        let p99 = snap.p99_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"));
        bar.set_message(format!(
            "{:.1}s | {offered} | achieved {achieved:.0} tx/s | p99 {p99} | errors {}",
            now.saturating_duration_since(recorder.start()).as_secs_f64(),
            snap.fail
        ));
        bar.tick();
    }
}
