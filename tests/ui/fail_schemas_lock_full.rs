// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// The same removal is fine under BACKWARD but breaks FULL.
kaufmann::schemas!("../../../../tests/ui/lock-full");

fn main() {}
