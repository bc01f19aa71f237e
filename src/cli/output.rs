//! How commands print their output.

/// Prints a line of a command's output on standard output. A reader that went away (`ferry deploy
/// log | head -1`) ends the command quietly and successfully, as it does for ripgrep, instead of
/// the panic `println!` gives on a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::print_line(::std::format_args!($($arg)*))
    };
}

/// What [`outln!`] calls.
#[doc(hidden)]
pub fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {error}");
        std::process::exit(1);
    }
}
