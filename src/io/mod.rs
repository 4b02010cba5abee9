//! File formats: NumPy `.npy`, OVF (OOMMF/mumax3), TIFF/PNG images, and rendered pictures.

pub mod image;
pub mod load;
pub mod npy;
pub mod outdir;
pub mod ovf;
pub mod render;
pub mod text;
