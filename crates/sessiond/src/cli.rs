//! The command line: `sessiond serve`, `sessiond config check|print`, and the
//! operator commands over the engine.

use std::process::ExitCode;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    ExitCode::FAILURE
}
