// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
kaufmann::schemas!("../../../../tests/ui/schemas-record-name");

fn main() {}
