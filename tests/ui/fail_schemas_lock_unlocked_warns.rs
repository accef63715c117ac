// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// The warning for a change not locked yet, made an error here to show its text.
#![deny(deprecated)]

kaufmann::schemas!("../../../../tests/ui/lock-compatible");

fn main() {}
