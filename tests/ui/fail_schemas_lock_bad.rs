// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// A lock that does not read: every problem, naming its line.
kaufmann::schemas!("../../../../tests/ui/lock-bad");

fn main() {}
