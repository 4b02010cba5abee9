//! Lengths with unit suffixes, as typed on the command line: `50nm`, `0.05um`, `-1mm`, `2e-8m`.

use crate::error::{Error, Result};

/// Parses a length into metres. Suffixes: `nm`, `um` (or `µm`), `mm`, `cm`, `m`; a bare number
/// is taken as metres.
///
/// ```
/// use magprior::units::parse_length;
/// assert_eq!(parse_length("50nm").unwrap(), 50e-9);
/// assert_eq!(parse_length("-1mm").unwrap(), -1e-3);
/// assert!(parse_length("5 parsecs").is_err());
/// ```
pub fn parse_length(s: &str) -> Result<f64> {
    let t = s.trim();
    // divide by exact powers of ten: 50nm -> 50 / 1e9 is correctly rounded, 50 * 1e-9 is not
    let units = [
        ("nm", 1e9),
        ("um", 1e6),
        ("µm", 1e6),
        ("mm", 1e3),
        ("cm", 1e2),
        ("m", 1.0),
    ];
    let (num, div) = units
        .iter()
        .find_map(|(u, f)| t.strip_suffix(u).map(|n| (n.trim(), *f)))
        .unwrap_or((t, 1.0));
    let v: f64 = num.parse().map_err(|_| {
        Error::arg(
            "length",
            format!("'{s}' is not a length (examples: 50nm, 0.05um, -1mm, 2e-8m)"),
        )
    })?;
    if !v.is_finite() {
        return Err(Error::arg("length", format!("'{s}' is not finite")));
    }
    Ok(v / div)
}

/// Formats metres with a convenient unit (`50 nm`, `1.5 um`, `-1 mm`).
pub fn format_length(m: f64) -> String {
    let a = m.abs();
    let (v, u) = if a == 0.0 {
        (0.0, "m")
    } else if a < 1e-6 {
        (m * 1e9, "nm")
    } else if a < 1e-3 {
        (m * 1e6, "um")
    } else if a < 1.0 {
        (m * 1e3, "mm")
    } else {
        (m, "m")
    };
    format!("{} {u}", (v * 1e6).round() / 1e6)
}
