kaufmann::schemas!("no-such-folder");

fn main() {}
