// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// Under strict, a change not locked yet is an error.
kaufmann::schemas!("../../../../tests/ui/lock-compatible", strict);

fn main() {}
