//! The library's one error type: every fallible operation returns [`Result`].

use std::path::PathBuf;

/// Errors raised by tensors, operations, layers, optimisers and file readers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two shapes that an operation needs to agree do not.
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// A shape an operation cannot take (wrong rank, size not allowed, ...).
    #[error("{op}: {msg} (shape {shape:?})")]
    BadShape {
        op: &'static str,
        shape: Vec<usize>,
        msg: String,
    },
    /// The data length does not match the shape.
    #[error("{op}: {len} elements do not fill shape {shape:?}")]
    LengthMismatch {
        op: &'static str,
        len: usize,
        shape: Vec<usize>,
    },
    /// An operation got a real tensor where it needs a complex one, or the reverse.
    #[error("{op}: expected a {expected} tensor, got {got}")]
    DType {
        op: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    /// An argument outside its allowed range.
    #[error("{op}: {msg}")]
    BadArgument { op: &'static str, msg: String },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file was read but its content is not what was expected.
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    /// Tensors on the wrong device for an operation (e.g. CPU and GPU inputs mixed).
    #[error("{op}: {msg}")]
    Device { op: &'static str, msg: String },
    /// A backend (GPU) failure.
    #[error("backend: {0}")]
    Backend(String),
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
}
