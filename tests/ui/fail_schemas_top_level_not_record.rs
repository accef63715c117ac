// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
kaufmann::schemas!("../../../../tests/ui/schemas-not-a-record");

fn main() {}
