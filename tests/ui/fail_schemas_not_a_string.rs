kaufmann::schemas!(schemas);

fn main() {}
