//! Shared CLI plumbing: unit parsing for clap, Ctrl-C, the progress display, JSON files.

use anyhow::{Context, Result};
use clap::ValueEnum;
use magprior::io::npy::write_atomic;
use magprior::{Device, DeviceChoice};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// clap value parser for lengths with units.
pub fn length(s: &str) -> std::result::Result<f64, String> {
    magprior::units::parse_length(s).map_err(|e| e.to_string())
}

/// clap value parser for positive lengths.
pub fn positive_length(s: &str) -> std::result::Result<f64, String> {
    let v = length(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be positive"))
    }
}

/// `--device` of the reconstruction commands.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Gpu,
}

/// Resolves `--device`: `auto` prints one line when it falls back to the CPU (unless quiet);
/// `gpu` with no adapter is an error.
pub fn select_device(d: DeviceArg, quiet: bool) -> Result<Device> {
    let choice = match d {
        DeviceArg::Auto => DeviceChoice::Auto,
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Gpu => DeviceChoice::Gpu,
    };
    let (device, note) = Device::select(choice)?;
    if let (Some(n), false) = (note, quiet) {
        eprintln!("{n}");
    }
    Ok(device)
}

/// Set by Ctrl-C; long loops poll it and stop cleanly.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        let g = f.clone();
        // a second Ctrl-C while stopping exits at once
        let _ = ctrlc::set_handler(move || {
            if g.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: finishing the current iteration and writing results (Ctrl-C again to abort)");
        });
        f
    })
    .clone()
}

/// Progress display: a rewritten line on a terminal, a plain line every 10 % otherwise.
pub struct Progress {
    total: usize,
    quiet: bool,
    tty: bool,
    start: Instant,
    last_draw: Instant,
    label: String,
}

impl Progress {
    pub fn new(total: usize, quiet: bool, label: &str) -> Progress {
        Progress {
            total,
            quiet,
            tty: std::io::stderr().is_terminal(),
            start: Instant::now(),
            last_draw: Instant::now(),
            label: label.to_string(),
        }
    }

    /// Reports iteration `i` (1-based) with its loss and extra text.
    pub fn update(&mut self, i: usize, loss: f64, extra: &str) {
        if self.quiet {
            return;
        }
        let rate = i as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "{} {i:>6}/{} loss {loss:.4e} {extra} {rate:.1} it/s",
            self.label, self.total
        );
        if self.tty {
            if self.last_draw.elapsed().as_millis() >= 100 || i == self.total {
                let width = 30;
                let filled = (i * width / self.total.max(1)).min(width);
                eprint!(
                    "\r[{}{}] {line}  ",
                    "#".repeat(filled),
                    "-".repeat(width - filled)
                );
                let _ = std::io::stderr().flush();
                self.last_draw = Instant::now();
            }
        } else {
            let step = (self.total / 10).max(1);
            if i.is_multiple_of(step) || i == self.total || i == 1 {
                eprintln!("{line}");
            }
        }
    }

    pub fn finish(&self) {
        if !self.quiet && self.tty {
            eprintln!();
        }
    }
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).context("serialising JSON")?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Writes a CSV file atomically from a header and rows.
pub fn write_csv(path: &Path, header: &str, rows: impl Iterator<Item = String>) -> Result<()> {
    let mut s = String::from(header);
    s.push('\n');
    for r in rows {
        s.push_str(&r);
        s.push('\n');
    }
    write_atomic(path, s.as_bytes())?;
    Ok(())
}

/// JSON number that stays valid for non-finite values (null).
pub fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
