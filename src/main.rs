//! The `ten` binary: everything lives in the library; see `ten::cli`.

fn main() -> std::process::ExitCode {
    ten::cli::main()
}
