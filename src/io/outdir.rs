//! Output directories that appear whole or not at all: files are written into a hidden staging
//! directory beside the target, which replaces the target only on [`OutputDir::commit`].

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A staging directory for the outputs of one run.
pub struct OutputDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl OutputDir {
    /// Prepares to write `target`. An existing `target` must be empty or a previous magprior
    /// output (it holds `metadata.json`); it is replaced only when the new one is committed.
    pub fn create(target: impl AsRef<Path>) -> Result<OutputDir> {
        let target = target.as_ref().to_path_buf();
        if target.exists() {
            let ours = target.join("metadata.json").exists();
            let empty = std::fs::read_dir(&target)
                .map_err(|e| io_err(&target, e))?
                .next()
                .is_none();
            if !target.is_dir() || !(ours || empty) {
                return Err(Error::Format {
                    path: target,
                    msg: "exists and is not a magprior output directory; choose another --out"
                        .into(),
                });
            }
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| io_err(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| io_err(&staging, e))?;
        Ok(OutputDir {
            target,
            staging,
            committed: false,
        })
    }

    /// The staging directory itself.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Path of a file inside the (staging) directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// A sub-directory (created) inside the staging directory.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let p = self.staging.join(name);
        std::fs::create_dir_all(&p).map_err(|e| io_err(&p, e))?;
        Ok(p)
    }

    /// The final location.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the staged outputs into place.
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            std::fs::remove_dir_all(&self.target).map_err(|e| io_err(&self.target, e))?;
        }
        std::fs::rename(&self.staging, &self.target).map_err(|e| io_err(&self.target, e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}
