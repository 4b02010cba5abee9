//! Every `kernels/*.wgsl` parses and validates with naga, without any adapter.

use std::path::Path;

#[test]
fn all_kernels_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("kernels/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no .wgsl files under {}", dir.display());
    let mut failures = Vec::new();
    for path in &names {
        let src = std::fs::read_to_string(path).expect("readable");
        let module = match naga::front::wgsl::parse_str(&src) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!(
                    "{}: parse: {}",
                    path.display(),
                    e.emit_to_string(&src)
                ));
                continue;
            }
        };
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        if let Err(e) = v.validate(&module) {
            failures.push(format!(
                "{}: validate: {}",
                path.display(),
                e.emit_to_string(&src)
            ));
            continue;
        }
        println!(
            "ok {} ({} entry points)",
            path.display(),
            module.entry_points.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} kernels invalid:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}
