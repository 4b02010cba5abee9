//! `magprior merge DIR`: the shares of a job split with `--shard I/N` (a Slurm job array) into
//! the outputs one process would have written. The shares' item directories are copied into a
//! staging directory, the job's own outputs computed there from them (the same code a single
//! run uses), then moved into DIR; the shares are removed only when all of that succeeded.

use crate::cli::common::ShardMeta;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e.with_context(|| format!("reading {}", from.display()))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// The shares under `dir`: `(path, what it says about itself)`, by index; every index of the
/// job present once, all of one kind and size, their items covering the job.
fn shares(dir: &Path) -> Result<Vec<(PathBuf, ShardMeta)>> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let is_share = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("shard-"));
        if p.is_dir() && is_share {
            let meta: ShardMeta =
                serde_json::from_value(crate::cli::common::read_json(&p.join("shard.json"))?)
                    .with_context(|| {
                        format!("{}: not a share's record", p.join("shard.json").display())
                    })?;
            found.push((p, meta));
        }
    }
    if found.is_empty() {
        bail!("{}: no shard-I-of-N directories to merge", dir.display());
    }
    found.sort_by_key(|(_, m)| m.index);
    let first = &found[0].1;
    let (kind, count, items) = (first.kind.clone(), first.count, first.items);
    if let Some((p, _)) = found
        .iter()
        .find(|(_, m)| m.kind != kind || m.count != count || m.items != items)
    {
        bail!(
            "{}: belongs to another job than {} (kind, share count or size differ)",
            p.display(),
            found[0].0.display()
        );
    }
    let have: Vec<usize> = found.iter().map(|(_, m)| m.index).collect();
    let missing: Vec<usize> = (0..count).filter(|i| !have.contains(i)).collect();
    if !missing.is_empty() || have.len() != count {
        bail!(
            "{}: shares {missing:?} of {count} are missing (or one is there twice); run them, then merge",
            dir.display()
        );
    }
    let mut next = 0;
    for (p, m) in &found {
        if m.range[0] != next {
            bail!(
                "{}: its items do not follow the previous share's",
                p.display()
            );
        }
        next = m.range[1];
    }
    if next != items {
        bail!(
            "{}: the shares cover {next} of {items} items",
            dir.display()
        );
    }
    Ok(found)
}

/// Merges the shares in `dir`.
pub fn run(dir: &Path) -> Result<()> {
    let found = shares(dir)?;
    let kind = found[0].1.kind.clone();
    let staging = dir.join(".merge-staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    let result = (|| -> Result<()> {
        // every share's item directories (and its metadata); the job's outputs come from them
        for (p, _) in &found {
            for e in std::fs::read_dir(p).with_context(|| format!("reading {}", p.display()))? {
                let e = e.with_context(|| format!("reading {}", p.display()))?;
                let (src, dst) = (e.path(), staging.join(e.file_name()));
                if src.is_dir() {
                    copy_tree(&src, &dst)?;
                } else if e.file_name() == "metadata.json" {
                    std::fs::create_dir_all(&staging)
                        .with_context(|| format!("creating {}", staging.display()))?;
                    std::fs::copy(&src, &dst)
                        .with_context(|| format!("copying {}", src.display()))?;
                }
            }
        }
        match kind.as_str() {
            "nv-ensemble" => crate::cli::nv::finish_ensemble(&staging, dir),
            "nv-sweep" => crate::cli::nv::finish_sweep(&staging, dir),
            "ltem-ensemble" => crate::cli::ltem::finish_ensemble(&staging, dir),
            "ltem-series" => crate::cli::ltem::finish_series(&staging, dir),
            other => bail!("{}: cannot merge shares of kind {other:?}", dir.display()),
        }
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    for e in
        std::fs::read_dir(&staging).with_context(|| format!("reading {}", staging.display()))?
    {
        let e = e.with_context(|| format!("reading {}", staging.display()))?;
        let dst = dir.join(e.file_name());
        if dst.is_dir() {
            std::fs::remove_dir_all(&dst)
                .with_context(|| format!("replacing {}", dst.display()))?;
        }
        std::fs::rename(e.path(), &dst).with_context(|| format!("writing {}", dst.display()))?;
    }
    std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    for (p, _) in &found {
        std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}
