//! Compile errors of Kaufmann's macros: each mistake a user can make has a case under `ui/` with the
//! exact message it gets (`TRYBUILD=overwrite` regenerates the `.stderr` files for review).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass_*.rs");
    t.compile_fail("ui/fail_*.rs");
}
