//! The bridge between the library's per-iteration observer and Python: a progress callback
//! called with the GIL held, Ctrl-C / "interrupt kernel" noticed between iterations, and an
//! exception in the callback turned into a clean stop (KeyboardInterrupt: the result so far is
//! returned) or re-raised after the run (anything else).

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

/// Watches one run. `tick` is called from the computing thread (GIL released) per iteration.
pub struct Observer {
    callback: Option<Py<PyAny>>,
    total: usize,
    /// Set when the run was interrupted (Ctrl-C or a KeyboardInterrupt from the callback).
    pub interrupted: bool,
    /// An exception the callback raised (other than KeyboardInterrupt).
    pub error: Option<PyErr>,
}

impl Observer {
    pub fn new(callback: Option<Py<PyAny>>, total: usize) -> Observer {
        Observer {
            callback,
            total,
            interrupted: false,
            error: None,
        }
    }

    /// One iteration: `stage` ("fit", "pretrain", ...), its 1-based index within the whole run,
    /// the loss, and a dict of extras. Returns whether to go on.
    pub fn tick(&mut self, stage: &str, iter: usize, loss: f64, extra: &[(&str, f64)]) -> bool {
        if self.interrupted || self.error.is_some() {
            return false;
        }
        Python::attach(|py| {
            if let Err(e) = py.check_signals() {
                self.fail(py, e);
                return false;
            }
            let Some(cb) = &self.callback else {
                return true;
            };
            let info = pyo3::types::PyDict::new(py);
            for (k, v) in extra {
                if info.set_item(*k, *v).is_err() {
                    return false;
                }
            }
            match cb.call1(py, (stage, iter, self.total, loss, info)) {
                Ok(r) => !matches!(r.extract::<bool>(py), Ok(false)),
                Err(e) => {
                    self.fail(py, e);
                    false
                }
            }
        })
    }

    fn fail(&mut self, py: Python<'_>, e: PyErr) {
        if e.is_instance_of::<PyKeyboardInterrupt>(py) {
            self.interrupted = true;
        } else {
            self.error = Some(e);
        }
    }

    /// After the run: the callback's exception, if it raised one.
    pub fn finish(self) -> PyResult<bool> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.interrupted),
        }
    }
}
