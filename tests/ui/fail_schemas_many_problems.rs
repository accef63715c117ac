// trybuild builds this file in target/tests/trybuild/kaufmann-tests: the folder is tests/ui/.
// Every problem of the folder at once: an invalid type, invalid JSON, a record not named for its
// file.
kaufmann::schemas!("../../../../tests/ui/schemas-many-problems");

fn main() {}
