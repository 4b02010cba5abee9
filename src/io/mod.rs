//! File formats: NumPy `.npy`, OVF (OOMMF/mumax3), TIFF/PNG images, and rendered pictures.

pub mod image;
pub mod npy;
pub mod ovf;
pub mod render;
