// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// An argument after the folder that is not strict.
kaufmann::schemas!("../../../../tests/ui/lock-compatible", lenient);

fn main() {}
