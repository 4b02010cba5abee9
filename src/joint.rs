//! Joint NV + Lorentz-TEM reconstruction: one magnetisation that explains a scanning-NV map and
//! a Lorentz-TEM image (or magnetic phase) of the same element, on grids of their own (pixel
//! sizes, an offset and a rotation between them, fitted or given), with the null-space test per
//! data set and jointly.
//!
//! ```
//! use magprior::joint::{self, JointConfig, LtemMeasurement, Registration};
//! use magprior::ltem::Microscope;
//! use magprior::nv::NvGeometry;
//! // a small vortex disk (16 x 16 cells of 5 nm), counter-clockwise
//! let (h, w) = (16, 16);
//! let mut m = vec![0f32; 3 * h * w];
//! let mut support = vec![0f32; h * w];
//! for i in 0..h * w {
//!     let (x, y) = ((i % w) as f32 - 7.5, (i / w) as f32 - 7.5);
//!     let r = x.hypot(y);
//!     if r < 7.0 {
//!         support[i] = 1.0;
//!         m[i] = -y / r * 8.6e5;
//!         m[h * w + i] = x / r * 8.6e5;
//!     }
//! }
//! let geom = NvGeometry { pixel: 5e-9, ..Default::default() };
//! let mic = Microscope { scale: 6.0, defocus: -2e5, ..Microscope::siprad_demo() };
//! let reg = Registration { offset_nm: [2.0, -1.0], rotation_deg: 1.0 };
//! let sim = joint::simulate(&m, h, w, &geom, &mic, 12, 12, &reg, 0.01, 0.1, 1)?;
//! let cfg = JointConfig {
//!     geom,
//!     microscope: mic,
//!     registration: reg,
//!     iters: 5,
//!     channels: vec![4],
//!     kernel: 3,
//!     ..Default::default()
//! };
//! let res = joint::reconstruct_joint(
//!     &sim.bnv, h, w, &LtemMeasurement::Image(sim.image), 12, 12, &support, &cfg, &mut |_| true,
//! )?;
//! assert_eq!(res.magnetization.len(), 3 * h * w);
//! assert_eq!(res.history.len(), 5);
//! // per data set: its noise level (estimated), chi^2, the null-space test
//! assert!(res.nv.sigma > 0.0 && res.ltem.sigma > 0.0);
//! # Ok::<(), magprior::Error>(())
//! ```

pub use crate::fit::StopReason;
pub use crate::pipelines::joint::{
    circulation, model_phase, reconstruct_joint, simulate, DatasetReport, Datasets, JointConfig,
    JointIter, JointModel, JointResult, LtemMeasurement, Registration, Simulated,
};
