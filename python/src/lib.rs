//! `magprior._magprior`: the native half of the Python package. Thin: arrays in, the library's
//! calls, arrays and dicts out. Defaults, docstrings and result classes live in the pure-Python
//! modules (`magprior/nv.py`, `magprior/ltem.py`, `magprior/io.py`), which call these functions
//! with every argument given.

mod convert;
mod ltem;
mod nv;
mod observe;

use convert::{array, to_py_err};
use magprior::{Device, DeviceChoice};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// The device a `device=` string names: `"auto"`, `"cpu"` or `"gpu"`, resolved as the CLI does.
/// Returns the device and the note `auto` gives when it falls back to the CPU.
pub(crate) fn device(choice: &str) -> PyResult<(Device, Option<String>)> {
    let c: DeviceChoice = choice.parse().map_err(to_py_err)?;
    Device::select(c).map_err(to_py_err)
}

/// The compute devices: the CPU, then every GPU adapter the environment offers.
#[pyfunction]
fn devices(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let cpu = PyDict::new(py);
    cpu.set_item("name", "cpu")?;
    cpu.set_item(
        "description",
        format!(
            "CPU backend (rayon + rustfft + gemm), {} threads",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
    )?;
    let mut out = vec![cpu];
    for line in py.detach(Device::list_adapters) {
        let d = PyDict::new(py);
        d.set_item("name", "gpu")?;
        d.set_item("description", line)?;
        out.push(d);
    }
    Ok(out)
}

/// Reads any file the library reads; returns (array, calibration dict).
#[pyfunction]
fn io_read<'py>(
    py: Python<'py>,
    path: PathBuf,
    allow_nan: bool,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
    let loaded = py
        .detach(|| {
            if allow_nan {
                magprior::io::load::load_array_with_nan(&path)
            } else {
                magprior::io::load::load_array(&path)
            }
        })
        .map_err(to_py_err)?;
    let shape = loaded.tensor.shape().to_vec();
    let data = loaded.tensor.to_vec().map_err(to_py_err)?;
    let c = &loaded.calibration;
    let cal = PyDict::new(py);
    cal.set_item("pixel_x", c.pixel_x)?;
    cal.set_item("pixel_y", c.pixel_y)?;
    cal.set_item("pixel_z", c.pixel_z)?;
    cal.set_item("source", c.source.clone())?;
    cal.set_item("cell", c.cell.map(|v| v.to_vec()))?;
    cal.set_item("value_multiplier", c.value_multiplier)?;
    cal.set_item(
        "value_units",
        c.value_units
            .as_ref()
            .and_then(|u| u.as_header().map(str::to_string)),
    )?;
    cal.set_item("values", c.value_units.as_ref().map(|u| u.describe()))?;
    Ok((array(py, data, &shape)?, cal))
}

#[pymodule]
fn _magprior(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(io_read, m)?)?;
    nv::register(m)?;
    ltem::register(m)?;
    Ok(())
}
