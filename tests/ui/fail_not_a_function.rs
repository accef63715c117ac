#[kaufmann::given_event("command.user.create")]
struct CreateUser;

fn main() {}
