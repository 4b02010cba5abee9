//! What a file says about its pixels and its values: pixel sizes per axis (metres), where the
//! calibration came from, and for magnetisation files what the values are (A/m or unit
//! vectors). Shared by every reader.

/// What the values of an OVF file are, from its `valueunits` / `valueunit` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueUnits {
    /// `A/m`: a magnetisation, to be used as it is (after the `valuemultiplier`).
    AmperePerMetre,
    /// Unit vectors (or any dimensionless field): mumax3's `m` writes `1`, OOMMF writes
    /// `None`.
    Unitless,
    /// The header has no value-unit key, so the file does not say (OVF 2.0 makes it optional).
    /// Real files of this kind hold A/m (`ovf2-bin8_different-case.ovf`: |M| ~ 1e6) as well as
    /// unit vectors, so callers must decide, e.g. from [`Ovf::norm_range`](crate::io::ovf::Ovf::norm_range).
    Unspecified,
    /// Any other unit (e.g. `T`, `mT`, `J/m3`) as written once, or the components' units
    /// joined by spaces where they differ.
    Other(String),
}

impl ValueUnits {
    /// Interprets the header value (`None` when the header has no value-unit key).
    pub fn parse(header: Option<&str>) -> ValueUnits {
        let Some(h) = header else {
            return ValueUnits::Unspecified;
        };
        let toks: Vec<&str> = h
            .split_whitespace()
            .map(|t| t.trim_matches(|c| c == '{' || c == '}' || c == '"'))
            .collect();
        let unitless = |t: &str| t.is_empty() || t == "1" || t.eq_ignore_ascii_case("none");
        if toks.iter().all(|t| unitless(t)) {
            ValueUnits::Unitless
        } else if toks.iter().all(|t| t.eq_ignore_ascii_case("a/m")) {
            ValueUnits::AmperePerMetre
        } else if toks.iter().all(|t| *t == toks[0]) {
            ValueUnits::Other(toks[0].to_string())
        } else {
            ValueUnits::Other(toks.join(" "))
        }
    }

    /// The unit as an OVF header writes it (one component); `None` for [`Self::Unspecified`]
    /// (no key is written).
    pub fn as_header(&self) -> Option<&str> {
        match self {
            ValueUnits::AmperePerMetre => Some("A/m"),
            ValueUnits::Unitless => Some("1"),
            ValueUnits::Unspecified => None,
            ValueUnits::Other(s) => Some(s),
        }
    }

    /// A short description for logs and metadata.
    pub fn describe(&self) -> String {
        match self {
            ValueUnits::AmperePerMetre => "magnetisation in A/m".into(),
            ValueUnits::Unitless => "unitless (unit vectors: multiply by Ms)".into(),
            ValueUnits::Unspecified => "no value unit in the header".into(),
            ValueUnits::Other(s) => format!("values in '{s}'"),
        }
    }
}

/// The calibration of one axis exactly as a DigitalMicrograph file stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisCalibration {
    /// Size of one pixel in `units`.
    pub scale: f64,
    /// Unit string as stored (e.g. `nm`, `A` for ångström, `1/nm`; empty when uncalibrated).
    pub units: String,
    /// The `Origin` value as stored (in pixels, as DigitalMicrograph writes it).
    pub origin: f64,
}

/// What a file says about the physical size of its pixels and the meaning of its values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Calibration {
    /// Pixel size along x (columns) in metres; `None` when the file records none.
    pub pixel_x: Option<f64>,
    /// Pixel size along y (rows) in metres; `None` when the file records none.
    pub pixel_y: Option<f64>,
    /// Spacing along z (frames of a stack, layers of an OVF mesh) in metres, when recorded.
    pub pixel_z: Option<f64>,
    /// Which file fields the calibration came from, for logs (`None` when uncalibrated).
    pub source: Option<String>,
    /// Per-axis calibration as stored, fastest axis first (DigitalMicrograph only).
    pub axes: Vec<AxisCalibration>,
    /// OVF only: what the values are (a magnetisation in A/m, unit vectors, ...).
    pub value_units: Option<ValueUnits>,
    /// OVF only: the `valuemultiplier` of the file (1 when absent).
    pub value_multiplier: Option<f64>,
    /// OVF only: the cell size (x, y, z) in metres.
    pub cell: Option<[f64; 3]>,
}

impl Calibration {
    /// Pixel size (x, y) in metres when the file records both.
    pub fn pixel(&self) -> Option<(f64, f64)> {
        Some((self.pixel_x?, self.pixel_y?))
    }
}

/// Metres per unit for a length unit as microscopy software writes it: `m`, `cm`, `mm`,
/// `um`/`µm`/`μm`/`micron`, `nm`, `Å`/`A`/`angstrom`, `pm` (and spelled-out forms), case
/// aside. `None` for anything that is not a length (`pixel`, `1/nm`, `eV`, empty, ...).
pub fn length_unit_in_metres(unit: &str) -> Option<f64> {
    let u = unit
        .trim()
        .replace("\\u00B5", "µ")
        .replace("\\u00b5", "µ")
        .replace(['\u{03bc}'], "µ");
    // 'A' is DigitalMicrograph's ångström; the ångström sign and letter are both seen.
    if matches!(u.as_str(), "A" | "Å" | "\u{212b}" | "å") {
        return Some(1e-10);
    }
    let l = u.to_lowercase();
    let l = l.strip_suffix('s').filter(|s| s.len() > 2).unwrap_or(&l);
    Some(match l {
        "m" | "metre" | "meter" => 1.0,
        "cm" | "centimetre" | "centimeter" => 1e-2,
        "mm" | "millimetre" | "millimeter" => 1e-3,
        "um" | "µm" | "micron" | "micrometre" | "micrometer" => 1e-6,
        "nm" | "nanometre" | "nanometer" => 1e-9,
        "angstrom" | "ångström" | "ångstrom" => 1e-10,
        "pm" | "picometre" | "picometer" => 1e-12,
        "inch" => 0.0254,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_units() {
        let cases = [
            ("nm", Some(1e-9)),
            (" um ", Some(1e-6)),
            ("µm", Some(1e-6)),
            ("\u{03bc}m", Some(1e-6)),
            ("\\u00B5m", Some(1e-6)),
            ("micron", Some(1e-6)),
            ("microns", Some(1e-6)),
            ("A", Some(1e-10)),
            ("Å", Some(1e-10)),
            ("angstrom", Some(1e-10)),
            ("mm", Some(1e-3)),
            ("m", Some(1.0)),
            ("pm", Some(1e-12)),
            ("pixel", None),
            ("pixels", None),
            ("1/nm", None),
            ("", None),
            ("eV", None),
        ];
        for (u, want) in cases {
            assert_eq!(length_unit_in_metres(u), want, "{u:?}");
        }
    }
}
