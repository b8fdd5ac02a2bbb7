//! What the binary writes to its terminal. Standard output holds what a person asked for (the banner,
//! a document, a password shown once); logs go to standard error. A reader that goes away (a closed
//! pipe: `sekisho openapi admin | head -c 100`) ends the output quietly, where `print!` would panic.

use std::io::{self, Write};

/// Writes `text` to standard output; `false` when it could not be written (the reader has gone).
pub fn out(text: &str) -> bool {
    let mut o = io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .is_ok()
}

/// Writes `text` to standard error, quietly doing nothing if that is closed.
pub fn err(text: &str) {
    let mut e = io::stderr().lock();
    let _ = e.write_all(text.as_bytes()).and_then(|()| e.flush());
}

/// Lines of text to print at once.
#[derive(Default)]
pub struct Lines(String);

impl Lines {
    pub fn line(&mut self, text: impl std::fmt::Display) -> &mut Self {
        use std::fmt::Write as _;
        let _ = writeln!(self.0, "{text}");
        self
    }

    /// Prints the lines on standard output ([`out`]).
    pub fn print(&self) -> bool {
        out(&self.0)
    }
}
