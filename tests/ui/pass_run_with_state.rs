// `run!` with state: plain values, a fallible expression with `?` and an awaited one. (In a
// module, so that the test compiles the expansion without starting a service.)
#[allow(dead_code)]
mod service {
    use kaufmann_examples::Users;

    async fn connect() -> std::io::Result<u32> {
        Ok(7)
    }

    kaufmann::run!(
        state = Users::default(),
        state = std::env::var("DATABASE_URL")?,
        state = connect().await?,
    );
}

fn main() {}
