// mimalloc: the service allocates many small, short-lived buffers per request (HTTP heads,
// JSON, SQL parameters) across threads; glibc's allocator spent ~10 % of the server's CPU on
// them in the pipeline benchmark (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    edgepurge::cli::main()
}
