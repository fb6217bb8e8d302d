//! Deterministic scenario tests for `loadgen`, run on tokio's paused virtual clock.

mod closed;
mod common;
mod coordinated_omission;
mod errors;
mod exhaustion;
mod find_max;
mod render;
mod thresholds;
