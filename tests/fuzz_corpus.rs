//! The fuzz targets' functions (`fuzz/src/lib.rs`) on every input of their committed corpus
//! (`fuzz/corpus/<target>`) and on every input a fuzz run crashed with (`fuzz/regressions/<target>`,
//! one file per crash found, kept for good): in the normal suite and its debug build, where
//! arithmetic overflow panics too.

use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
mod targets;

#[test]
fn every_corpus_and_regression_input_is_a_value_or_an_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, run) in targets::TARGETS {
        let mut inputs = 0;
        for folder in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                run(&std::fs::read(&path).unwrap());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "fuzz target {name} has no committed corpus");
        println!("fuzz target {name}: {inputs} inputs replayed");
    }
}
