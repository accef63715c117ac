// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// A compatible change not locked yet compiles (with a warning).
kaufmann::schemas!("../../../../tests/ui/lock-compatible");

fn main() {}
