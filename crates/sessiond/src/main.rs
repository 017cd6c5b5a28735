//! The `sessiond` binary: everything happens in [`sessiond::cli`].

/// mimalloc instead of the system allocator: under load the server allocates
/// and frees on different worker threads, where glibc's arenas contend.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sessiond::cli::main()
}
