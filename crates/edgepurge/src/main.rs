fn main() -> std::process::ExitCode {
    edgepurge::cli::main()
}
