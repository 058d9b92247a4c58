fn main() -> std::process::ExitCode {
    binfmtd::cli::main()
}
