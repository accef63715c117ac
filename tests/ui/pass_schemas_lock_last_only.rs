// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// The same change under BACKWARD: checked against the last version only, it compiles.
kaufmann::schemas!("../../../../tests/ui/lock-last-only");

fn main() {}
