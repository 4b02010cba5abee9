//! NumPy arrays <-> the library's row-major `Vec<f32>`, and library errors -> Python exceptions.

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// A library error as the Python exception a user expects, with the same one-line message:
/// a missing file `FileNotFoundError`, other I/O `OSError`, no GPU or a GPU failure
/// `RuntimeError`, everything else (bad shapes, arguments, file contents) `ValueError`.
pub fn to_py_err(e: magprior::Error) -> PyErr {
    let msg = e.to_string();
    match &e {
        magprior::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        magprior::Error::Io { .. } => PyOSError::new_err(msg),
        magprior::Error::NoGpu(_)
        | magprior::Error::Gpu { .. }
        | magprior::Error::Device { .. } => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// A `ValueError` naming the argument.
pub fn bad(what: &str, msg: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{what}: {msg}"))
}

/// A float32 array's data (C order, as the Python side hands it over) and shape.
pub fn input(a: &PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<(Vec<f32>, Vec<usize>)> {
    let shape = a.shape().to_vec();
    let data = a
        .as_slice()
        .map_err(|_| bad(what, "the array must be C-contiguous"))?
        .to_vec();
    Ok((data, shape))
}

/// An (H, W) map's data and size.
pub fn map(a: &PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<(Vec<f32>, usize, usize)> {
    let (d, s) = input(a, what)?;
    match s.as_slice() {
        [h, w] if *h >= 2 && *w >= 2 => Ok((d, *h, *w)),
        _ => Err(bad(
            what,
            format!("expected an (H, W) map with H, W >= 2, got shape {s:?}"),
        )),
    }
}

/// A NumPy float32 array of `shape` holding `data`.
pub fn array<'py>(py: Python<'py>, data: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(data.into_pyarray(py).reshape(shape.to_vec())?.into_any())
}

/// A NumPy float64 vector.
pub fn vec64<'py>(py: Python<'py>, data: Vec<f64>) -> Bound<'py, PyAny> {
    data.into_pyarray(py).into_any()
}

/// The option `value` of the setting `what` names, from `(name, option)` pairs; a `ValueError`
/// listing the names otherwise.
pub fn pick<T: Clone>(what: &str, value: &str, options: &[(&str, T)]) -> PyResult<T> {
    if let Some((_, t)) = options.iter().find(|(n, _)| *n == value) {
        return Ok(t.clone());
    }
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let list = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    };
    Err(bad(what, format!("{value:?}: expected {list}")))
}
