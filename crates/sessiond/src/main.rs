//! The `sessiond` binary: everything happens in [`sessiond::cli`].

fn main() -> std::process::ExitCode {
    sessiond::cli::main()
}
