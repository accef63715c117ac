// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// A field removed that version 1 has without a default breaks FORWARD.
kaufmann::schemas!("../../../../tests/ui/lock-forward");

fn main() {}
