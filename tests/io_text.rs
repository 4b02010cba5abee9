//! Plain-text matrices as `numpy.savetxt` writes them (`.txt`, `.csv`, `.dat`, `.asc`).

mod io_common;

use io_common::scratch;
use magprior::io::text::read_text_matrix;
use magprior::io::{read, FileKind};

/// What `np.savetxt(f, a, header="B_NV (T)\npixel 480 nm")` writes for a 2 x 3 array
/// (default `fmt='%.18e'`, space delimiter, `# ` before each header line).
const SAVETXT: &str = "# B_NV (T)\n# pixel 480 nm\n\
1.000000000000000000e+00 -2.500000000000000000e-01 3.000000000000000061e-07\n\
nan 5.000000000000000000e+00 -6.000000000000000000e+00\n";

#[test]
fn savetxt_default_format_with_header_and_nan() {
    let d = scratch("text-savetxt");
    for ext in ["txt", "dat", "asc", "TXT"] {
        let p = d.join(format!("m.{ext}"));
        std::fs::write(&p, SAVETXT).unwrap();
        let a = read(&p).unwrap();
        assert_eq!(a.kind, FileKind::Text, "{ext}");
        assert_eq!(a.shape, vec![2, 3], "{ext}");
        assert_eq!(a.data[0], 1.0);
        assert_eq!(a.data[1], -0.25);
        assert_eq!(a.data[2], 3e-7);
        assert!(a.data[3].is_nan(), "nan kept as stored");
        assert_eq!(a.data[5], -6.0);
        assert_eq!(a.calibration, Default::default());
    }
    // load_array refuses the NaN, naming the file and the element.
    let p = d.join("m.txt");
    let e = magprior::io::load::load_array(&p)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("m.txt") && e.contains("element 3"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn csv_with_comma_delimiter_crlf_and_fmt() {
    let d = scratch("text-csv");
    // np.savetxt(f, a, delimiter=",", fmt="%.6g") on Windows.
    let p = d.join("m.csv");
    std::fs::write(&p, "0.1,0.2\r\n-3,4e-05\r\n5,6\r\n").unwrap();
    let m = read_text_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols), (3, 2));
    assert_eq!(m.data, vec![0.1, 0.2, -3.0, 4e-5, 5.0, 6.0]);
    // ", " separated, tabs, inline comments, blank lines, a single column.
    std::fs::write(&p, "1, 2, 3\n\n4, 5, 6 # note\n").unwrap();
    assert_eq!(read(&p).unwrap().data, vec![1., 2., 3., 4., 5., 6.]);
    std::fs::write(&p, "1\t2\n3\t4\n").unwrap();
    assert_eq!(read(&p).unwrap().shape, vec![2, 2]);
    std::fs::write(&p, "7\n8\n9\n").unwrap();
    assert_eq!(read(&p).unwrap().shape, vec![3, 1]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn ragged_rows_and_bad_values_name_the_line() {
    let d = scratch("text-bad");
    let p = d.join("r.txt");
    std::fs::write(&p, "# h\n1 2 3\n4 5 6\n7 8\n").unwrap();
    let e = read(&p).unwrap_err().to_string();
    assert!(
        e.contains("r.txt")
            && e.contains("line 4")
            && e.contains("2 values")
            && e.contains("line 2"),
        "{e}"
    );
    std::fs::write(&p, "1 2\n3 x\n").unwrap();
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("line 2, column 2") && e.contains("'x'"), "{e}");
    std::fs::write(&p, "# nothing\n\n").unwrap();
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("no data"), "{e}");
    // Complex values as savetxt writes them are not numbers.
    std::fs::write(&p, " (1+2j)  (3-4j)\n").unwrap();
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("line 1, column 1"), "{e}");
    std::fs::write(&p, [0xffu8, 0xfe, 0x00]).unwrap();
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("not UTF-8"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}
