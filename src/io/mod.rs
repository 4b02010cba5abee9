//! File formats: NumPy `.npy`, plain-text matrices, OVF (OOMMF/mumax3), TIFF/PNG images,
//! DigitalMicrograph `.dm3`/`.dm4`, and rendered pictures. [`read`] reads any of them.

pub mod array;
pub mod calibration;
pub mod dm;
pub mod image;
pub mod load;
pub mod npy;
pub mod outdir;
pub mod ovf;
pub mod render;
pub mod text;

pub use array::{read, read_complex, Array, ComplexArray, FileKind};
pub use calibration::{Calibration, ValueUnits};
