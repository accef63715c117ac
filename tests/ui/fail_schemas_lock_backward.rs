// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// A field added without a default breaks BACKWARD for the locked version 1.
kaufmann::schemas!("../../../../tests/ui/lock-backward");

fn main() {}
