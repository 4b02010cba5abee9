//! Physical constants (CODATA 2018), SI units, in f64.

/// Vacuum permeability (T m / A).
pub const MU0: f64 = 1.256_637_062_12e-6;
/// Planck constant (J s), exact.
pub const H_PLANCK: f64 = 6.626_070_15e-34;
/// Elementary charge (C), exact.
pub const E_CHARGE: f64 = 1.602_176_634e-19;
/// Electron mass (kg).
pub const M_ELECTRON: f64 = 9.109_383_701_5e-31;
/// Speed of light (m/s), exact.
pub const C_LIGHT: f64 = 299_792_458.0;
/// Magnetic flux quantum `Phi0 = h / (2e)` (T m^2).
pub const PHI0: f64 = H_PLANCK / (2.0 * E_CHARGE);
/// Bohr magneton (A m^2 = J/T).
pub const MU_B: f64 = 9.274_010_078_3e-24;
