//! `phoenix-ga`: the Phoenix guest agent binary; everything is in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    phoenix_ga::run()
}
