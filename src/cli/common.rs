//! Shared CLI plumbing: clap value parsers, `--device`, Ctrl-C, the progress display, and the
//! file helpers every command uses (maps in, `.npy`/JSON/CSV out).

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use magprior::io::load::load_array;
use magprior::io::npy::{write_atomic, write_npy};
use magprior::{Device, DeviceChoice, Tensor};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

// ------------------------------------------------------------------ value parsers

/// A length with units (`50nm`; a bare number is metres).
pub fn length(s: &str) -> std::result::Result<f64, String> {
    magprior::units::parse_length(s).map_err(|e| e.to_string())
}

/// A positive length.
pub fn positive_length(s: &str) -> std::result::Result<f64, String> {
    let v = length(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be positive"))
    }
}

/// A length >= 0.
pub fn nonneg_length(s: &str) -> std::result::Result<f64, String> {
    let v = length(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be >= 0"))
    }
}

pub fn number(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("'{s}' is not finite"))
    }
}

/// A positive finite number.
pub fn positive(s: &str) -> std::result::Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be positive"))
    }
}

/// A number strictly between 0 and 1.
pub fn fraction_open(s: &str) -> std::result::Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be between 0 and 1 (exclusive)"))
    }
}

/// A finite number >= 0.
pub fn nonneg(s: &str) -> std::result::Result<f64, String> {
    let v = number(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be >= 0"))
    }
}

/// An odd kernel size.
pub fn odd(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(k) if k % 2 == 1 => Ok(k),
        _ => Err(format!("'{s}' must be an odd positive integer")),
    }
}

/// A count >= 1.
pub fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(k) if k >= 1 => Ok(k),
        _ => Err(format!("'{s}' must be an integer >= 1")),
    }
}

// ------------------------------------------------------------------ devices, Ctrl-C, progress

/// `--device` of the reconstruction commands.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceArg {
    /// A hardware GPU when one exists, else the CPU.
    Auto,
    /// The CPU backend.
    Cpu,
    /// Any GPU adapter (lavapipe included).
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

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    interrupt_flag().load(Ordering::SeqCst)
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

// ------------------------------------------------------------------ files

/// An (H, W) map from a file (an (1, H, W) array is accepted), H and W >= `min`.
pub fn load_map(path: &Path, min: usize) -> Result<(Vec<f32>, usize, usize)> {
    map_shape(path, load_array(path)?.tensor, min)
}

/// [`load_map`] keeping NaN / inf pixels (dropouts, for `--ignore-nan`).
pub fn load_map_with_nan(path: &Path, min: usize) -> Result<(Vec<f32>, usize, usize)> {
    map_shape(
        path,
        magprior::io::load::load_array_with_nan(path)?.tensor,
        min,
    )
}

fn map_shape(path: &Path, t: Tensor, min: usize) -> Result<(Vec<f32>, usize, usize)> {
    match t.shape() {
        [h, w] | [1, h, w] if *h >= min && *w >= min => Ok((t.to_vec()?, *h, *w)),
        s => bail!(
            "{}: expected an (H, W) map with H, W >= {min}, got shape {s:?}",
            path.display()
        ),
    }
}

/// An error unless `path` (h, w) matches `other`'s size.
pub fn check_same(
    path: &Path,
    hw: (usize, usize),
    other: &Path,
    ohw: (usize, usize),
) -> Result<()> {
    if hw != ohw {
        bail!(
            "{}: is {}x{} but {} is {}x{}",
            path.display(),
            hw.0,
            hw.1,
            other.display(),
            ohw.0,
            ohw.1
        );
    }
    Ok(())
}

/// Writes a real array of `shape` as `.npy` (atomically).
pub fn write_map(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    write_npy(path, &Tensor::from_shape_vec(shape, data.to_vec())?)?;
    Ok(())
}

/// Writes pretty JSON atomically (NaN and infinities become `null`).
pub fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
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

/// The program's version, for metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The device and adapter of a run, for metadata.
#[derive(Serialize)]
pub struct DeviceMeta {
    pub device: &'static str,
    pub adapter: Option<String>,
}

impl DeviceMeta {
    pub fn of(d: Device) -> DeviceMeta {
        DeviceMeta {
            device: d.name(),
            adapter: d.adapter().map(|a| a.to_string()),
        }
    }
}

/// A JSON file, parsed; the error names it.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// An `.npy` array a run wrote (read back by `merge` and the ensembles' summaries) and its
/// shape, which must have `ndim` axes; the error names the file.
pub fn read_written(path: &Path, ndim: usize) -> Result<(Vec<f32>, Vec<usize>)> {
    let t = magprior::io::npy::read_npy(path)?;
    let shape = t.shape().to_vec();
    if shape.len() != ndim || shape.contains(&0) {
        bail!(
            "{}: expected a {ndim}-D array, got shape {shape:?}",
            path.display()
        );
    }
    Ok((t.to_vec()?, shape))
}

/// An ensemble's member directories under `dir/members/` (`seed_S`), seeds ascending:
/// `(seed, "members/seed_S")`.
pub fn member_dirs(dir: &Path) -> Result<Vec<(u64, String)>> {
    let root = dir.join("members");
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("reading {}", root.display()))?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(seed) = name
            .strip_prefix("seed_")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((seed, format!("members/{name}")));
        }
    }
    if out.is_empty() {
        bail!("{}: no member directories (seed_S)", root.display());
    }
    out.sort();
    Ok(out)
}

/// One share of a job split over processes (a Slurm job array): share `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    /// At least 1.
    pub count: usize,
}

impl Shard {
    /// `--shard I/N` (0-based I), else the Slurm array variables when present
    /// (`SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`), else none.
    pub fn resolve(flag: Option<&str>) -> Result<Option<Shard>> {
        if let Some(s) = flag {
            let (i, n) = s
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("--shard {s}: expected I/N (0 <= I < N)"))?;
            let (index, count): (usize, usize) = (
                i.trim().parse().with_context(|| format!("--shard {s}"))?,
                n.trim().parse().with_context(|| format!("--shard {s}"))?,
            );
            if count == 0 || index >= count {
                bail!("--shard {s}: expected I/N with 0 <= I < N");
            }
            return Ok(Some(Shard { index, count }));
        }
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        match (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT")) {
            (Some(id), Some(count)) if count > 0 => {
                let index = id.saturating_sub(var("SLURM_ARRAY_TASK_MIN").unwrap_or(0));
                if index >= count {
                    bail!("SLURM_ARRAY_TASK_ID {id} is outside an array of {count} tasks");
                }
                Ok(Some(Shard { index, count }))
            }
            _ => Ok(None),
        }
    }

    /// The share of an `--ensemble members` run: none for a single run (where `--shard` is an
    /// error; Slurm's variables are not taken as a request then).
    pub fn for_ensemble(flag: Option<&str>, members: usize) -> Result<Option<Shard>> {
        match members {
            1 if flag.is_some() => bail!("--shard splits --ensemble K (K > 1)"),
            1 => Ok(None),
            _ => Shard::resolve(flag),
        }
    }

    /// This share's items of `n` (contiguous blocks, the first `n % count` one longer).
    pub fn block(&self, n: usize) -> std::ops::Range<usize> {
        let at = |i: usize| i * n / self.count;
        at(self.index)..at(self.index + 1)
    }

    /// Where the share writes: `OUT/shard-I-of-N`.
    pub fn dir(&self, out: &Path) -> PathBuf {
        out.join(format!("shard-{}-of-{}", self.index, self.count))
    }
}

/// What a share records about itself (`shard.json`), for `magprior merge`.
#[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
pub struct ShardMeta {
    /// `nv-ensemble`, `ltem-ensemble`.
    pub kind: String,
    pub index: usize,
    pub count: usize,
    /// Items of the whole job (members).
    pub items: usize,
    /// This share's items.
    pub range: [usize; 2],
}

/// Where a job writes: `OUT` itself, or its share's `OUT/shard-I-of-N/` (OUT created).
pub fn job_dir(out: &Path, shard: Option<Shard>) -> Result<magprior::io::outdir::OutputDir> {
    Ok(match shard {
        Some(s) => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            magprior::io::outdir::OutputDir::create(s.dir(out))?
        }
        None => magprior::io::outdir::OutputDir::create(out)?,
    })
}

/// Ends a share: records it (`shard.json`; and a metadata.json unless the job wrote one, so a
/// rerun may replace the directory), commits it and says what to do next.
pub fn finish_share(
    out: magprior::io::outdir::OutputDir,
    job_out: &Path,
    s: Shard,
    kind: &str,
    items: usize,
    range: std::ops::Range<usize>,
    what: &str,
) -> Result<()> {
    write_json(
        &out.file("shard.json"),
        &ShardMeta {
            kind: kind.into(),
            index: s.index,
            count: s.count,
            items,
            range: [range.start, range.end],
        },
    )?;
    if !out.file("metadata.json").exists() {
        write_json(&out.file("metadata.json"), &format!("share of {kind}"))?;
    }
    let path = out.commit()?;
    println!(
        "{}: {what} {}..{} of {items} (share {} of {}); `magprior merge {}` when every share is done",
        path.display(),
        range.start,
        range.end,
        s.index,
        s.count,
        job_out.display()
    );
    Ok(())
}

/// A progress bar per ensemble member, a new one when the member changes.
pub struct MemberProgress {
    current: Option<(usize, Progress)>,
    total: usize,
    members: usize,
    offset: usize,
    quiet: bool,
}

impl MemberProgress {
    /// Members `offset + m` of `members`, each `total` steps long.
    pub fn new(total: usize, members: usize, offset: usize, quiet: bool) -> MemberProgress {
        MemberProgress {
            current: None,
            total,
            members,
            offset,
            quiet,
        }
    }

    /// Member `m` (of this process's) at step `i` with `loss`; whether to go on (Ctrl-C).
    pub fn update(&mut self, m: usize, i: usize, loss: f64, extra: &str) -> bool {
        if self.current.as_ref().is_none_or(|(p, _)| *p != m) {
            if let Some((_, old)) = self.current.take() {
                old.finish();
            }
            let label = format!("member {}/{}", self.offset + m + 1, self.members);
            self.current = Some((m, Progress::new(self.total, self.quiet, &label)));
        }
        if let Some((_, p)) = self.current.as_mut() {
            p.update(i, loss, extra);
        }
        !interrupted()
    }

    /// Closes the last bar.
    pub fn finish(self) {
        if let Some((_, p)) = self.current {
            p.finish();
        }
    }
}
