//! Plain-text matrices as `numpy.savetxt` (and most instrument software) writes them: one row
//! per line, values separated by whitespace, commas, semicolons or tabs; `#` starts a comment
//! (whole lines or the rest of a line); blank lines are skipped. Every row must have the same
//! number of values. `nan`, `inf` and `-inf` are accepted as values (the caller decides what
//! to do with them).

use crate::error::{Error, Result};
use std::path::Path;

/// A matrix read from a text file: `rows x cols` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMatrix {
    /// Number of data lines.
    pub rows: usize,
    /// Values per line.
    pub cols: usize,
    /// The values, row by row.
    pub data: Vec<f32>,
}

/// How the values on a line are separated.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Sep {
    Whitespace,
    Char(char),
}

impl Sep {
    fn detect(line: &str) -> Sep {
        for c in [',', ';', '\t'] {
            if line.contains(c) {
                return if c == '\t' {
                    Sep::Whitespace
                } else {
                    Sep::Char(c)
                };
            }
        }
        Sep::Whitespace
    }
    fn name(self) -> &'static str {
        match self {
            Sep::Whitespace => "whitespace",
            Sep::Char(',') => "commas",
            Sep::Char(_) => "semicolons",
        }
    }
}

/// Reads a text matrix file (see the module documentation for the accepted layout).
pub fn read_text_matrix(path: impl AsRef<Path>) -> Result<TextMatrix> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_text_matrix(path, &bytes)
}

/// Parses the bytes of a text matrix (`path` is only used in error messages).
pub(crate) fn parse_text_matrix(path: &Path, bytes: &[u8]) -> Result<TextMatrix> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::format(
            path,
            format!("line {line}: not UTF-8 text (is this a text matrix?)"),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sep = None;
    let mut cols = 0usize;
    let mut first_line = 0usize;
    let mut rows = 0usize;
    let mut data = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let s = *sep.get_or_insert_with(|| Sep::detect(line));
        let before = data.len();
        let mut push = |tok: &str, col: usize| -> Result<()> {
            let v: f64 = tok.parse().map_err(|_| {
                let short: String = tok.chars().take(30).collect();
                Error::format(
                    path,
                    format!(
                        "line {line_no}, column {col}: '{short}' is not a number \
                         (values separated by {})",
                        s.name()
                    ),
                )
            })?;
            data.push(v as f32);
            Ok(())
        };
        match s {
            Sep::Whitespace => {
                for (c, tok) in line.split_whitespace().enumerate() {
                    push(tok, c + 1)?;
                }
            }
            Sep::Char(ch) => {
                let fields: Vec<&str> = line.split(ch).map(str::trim).collect();
                // One trailing separator ("1,2,3,") is common and harmless.
                let n = match fields.split_last() {
                    Some((last, rest)) if last.is_empty() && !rest.is_empty() => rest.len(),
                    _ => fields.len(),
                };
                for (c, tok) in fields[..n].iter().enumerate() {
                    if tok.is_empty() {
                        return Err(Error::format(
                            path,
                            format!("line {line_no}, column {}: empty value", c + 1),
                        ));
                    }
                    push(tok, c + 1)?;
                }
            }
        }
        let got = data.len() - before;
        if rows == 0 {
            cols = got;
            first_line = line_no;
        } else if got != cols {
            return Err(Error::format(
                path,
                format!(
                    "line {line_no} has {got} values, but line {first_line} (the first data \
                     line) has {cols}: rows must be of equal length"
                ),
            ));
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(Error::format(
            path,
            "no data lines (empty or only comments)",
        ));
    }
    Ok(TextMatrix { rows, cols, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TextMatrix> {
        parse_text_matrix(Path::new("m.txt"), s.as_bytes())
    }

    #[test]
    fn separators_comments_and_nan() {
        let m = parse("# header\n1 2 3\n\n4\t5 6 # trailing\n").unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.data, vec![1., 2., 3., 4., 5., 6.]);
        let m = parse("1.5e-3, -2,nan,\r\n4,inf,-inf,\r\n").unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.data[0], 1.5e-3);
        assert!(m.data[2].is_nan() && m.data[4] == f32::INFINITY && m.data[5] < 0.0);
        let m = parse("1;2\n3;4\n").unwrap();
        assert_eq!(m.data, vec![1., 2., 3., 4.]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("1 2\n3 4\n5\n").unwrap_err().to_string();
        assert!(
            e.contains("m.txt") && e.contains("line 3") && e.contains("1 values"),
            "{e}"
        );
        let e = parse("1,2\n3,,4\n").unwrap_err().to_string();
        assert!(e.contains("line 2, column 2: empty"), "{e}");
        let e = parse("x y\n1 2\n").unwrap_err().to_string();
        assert!(e.contains("line 1, column 1: 'x'"), "{e}");
        let e = parse("# only\n\n").unwrap_err().to_string();
        assert!(e.contains("no data"), "{e}");
    }
}
