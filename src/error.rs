//! The library's one error type: every fallible operation returns [`Result`].

use std::path::PathBuf;

/// Errors raised by tensors, operations, layers, optimisers, pipelines and file readers. Each
/// variant says which operation (or file) failed and why, in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes that an operation needs to agree do not.
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// The first shape.
        lhs: Vec<usize>,
        /// The second shape.
        rhs: Vec<usize>,
    },
    /// A shape an operation cannot take (wrong rank, size not allowed, ...).
    #[error("{op}: {msg} (shape {shape:?})")]
    BadShape {
        /// The operation.
        op: &'static str,
        /// The offending shape.
        shape: Vec<usize>,
        /// What is wrong with it.
        msg: String,
    },
    /// The data length does not match the shape.
    #[error("{op}: {len} elements do not fill shape {shape:?}")]
    LengthMismatch {
        /// The operation.
        op: &'static str,
        /// Elements given.
        len: usize,
        /// Shape asked for.
        shape: Vec<usize>,
    },
    /// An operation got a real tensor where it needs a complex one, or the reverse.
    #[error("{op}: expected a {expected} tensor, got {got}")]
    DType {
        /// The operation.
        op: &'static str,
        /// The dtype it needs.
        expected: &'static str,
        /// The dtype it got.
        got: &'static str,
    },
    /// An argument outside its allowed range.
    #[error("{op}: {msg}")]
    BadArgument {
        /// The operation or setting.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A file was read but its content is not what was expected.
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// Tensors on the wrong device for an operation (e.g. CPU and GPU inputs mixed).
    #[error("{op}: {msg}")]
    Device {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// No GPU adapter could be opened (no driver, or none usable).
    #[error("no GPU adapter ({0})")]
    NoGpu(String),
    /// The GPU driver reported a failure (validation, out of memory, a lost device) while
    /// `what` ran.
    #[error("GPU: {what}: {msg}")]
    Gpu {
        /// What was running (a kernel entry, an upload, a download).
        what: String,
        /// The driver's message.
        msg: String,
    },
}

/// Shorthand for `std::result::Result<T, magprior::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn arg(op: &'static str, msg: impl Into<String>) -> Self {
        Error::BadArgument {
            op,
            msg: msg.into(),
        }
    }
    pub(crate) fn shape(op: &'static str, shape: &[usize], msg: impl Into<String>) -> Self {
        Error::BadShape {
            op,
            shape: shape.to_vec(),
            msg: msg.into(),
        }
    }
    pub(crate) fn format(path: &std::path::Path, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
    pub(crate) fn gpu(what: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Gpu {
            what: what.into(),
            msg: msg.to_string(),
        }
    }
}
