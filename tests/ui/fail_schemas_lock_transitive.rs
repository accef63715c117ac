// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// Compatible with version 2, not with version 1: refused under BACKWARD_TRANSITIVE.
kaufmann::schemas!("../../../../tests/ui/lock-transitive");

fn main() {}
