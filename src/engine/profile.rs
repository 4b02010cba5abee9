//! Per-kernel wall-clock accounting for finding where a step's time goes.
//!
//! Off unless the environment variable `MAGPRIOR_PROFILE` is set (read once): then every kernel
//! run through the dispatch (forward ops, backward kernels, optimiser updates) adds its wall time
//! to a per-name total, and [`take`] returns and clears the totals. On the GPU the figure is the
//! time to record and submit, not to execute. Sub-steps of a kernel appear as `name/part` and are
//! also counted in `name`.
//!
//! ```
//! let totals = magprior::profile::take();
//! assert!(totals.iter().all(|t| t.seconds >= 0.0));
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Accumulated wall time of one kernel name.
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    /// The kernel's name (`conv2d_backward`, `conv2d_backward/dw`, `adamw`, ...).
    pub op: &'static str,
    /// How many times it ran.
    pub calls: u64,
    /// Total wall seconds.
    pub seconds: f64,
}

fn table() -> &'static Mutex<HashMap<&'static str, (u64, f64)>> {
    static T: OnceLock<Mutex<HashMap<&'static str, (u64, f64)>>> = OnceLock::new();
    T.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether `MAGPRIOR_PROFILE` is set (read on the first call).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MAGPRIOR_PROFILE").is_some())
}

/// Runs `f`, adding its wall time to `op`'s total when profiling is on.
pub(crate) fn time<T>(op: &'static str, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let t0 = Instant::now();
    let out = f();
    let dt = t0.elapsed().as_secs_f64();
    if let Ok(mut t) = table().lock() {
        let e = t.entry(op).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += dt;
    }
    out
}

/// The totals since the last call, largest first, and clears them (empty when profiling is off).
pub fn take() -> Vec<OpTime> {
    let mut out: Vec<OpTime> = match table().lock() {
        Ok(mut t) => t
            .drain()
            .map(|(op, (calls, seconds))| OpTime { op, calls, seconds })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    out
}
