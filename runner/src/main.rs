//! `airlock`: parses arguments and reports errors; everything else is the
//! library (see `airlock_runner::frontend::cli`).

fn main() {
    std::process::exit(airlock_runner::frontend::cli::main());
}
