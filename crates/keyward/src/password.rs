//! People's passwords as the admin commands take them: asked for twice on the terminal
//! without echo, or read from the first line of stdin for scripts — never from an argument,
//! which would show in `ps` and in the shell's history. At least 8 characters; stored as
//! argon2id, hashed off the async workers.

use std::io::{BufRead, IsTerminal};

use anyhow::{anyhow, bail};

/// The shortest password the commands accept.
pub const MIN_CHARS: usize = 8;

/// Where a password is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The first line of stdin (`--password-stdin`, or stdin is not a terminal).
    Stdin,
    /// Asked for on the terminal (`/dev/tty`), echo off, twice.
    Terminal,
}

impl Source {
    /// `--password-stdin` reads stdin; so does a stdin that is a pipe or a file, where
    /// there is nobody to ask. Otherwise the person at the terminal is asked.
    pub fn pick(password_stdin: bool, stdin_is_terminal: bool) -> Self {
        if password_stdin || !stdin_is_terminal {
            Source::Stdin
        } else {
            Source::Terminal
        }
    }

    /// [`Source::pick`] for this process's stdin.
    pub fn of_this_process(password_stdin: bool) -> Self {
        Self::pick(password_stdin, std::io::stdin().is_terminal())
    }
}

/// Reads a password from `source` and checks its length.
pub fn read(source: Source) -> anyhow::Result<String> {
    match source {
        Source::Stdin => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']).to_owned();
            check(&password, "the password on stdin")?;
            Ok(password)
        }
        Source::Terminal => {
            let first = prompt("New password: ")?;
            check(&first, "the password")?;
            let again = prompt("Repeat the password: ")?;
            if again != first {
                bail!("the two passwords differ; nothing was changed");
            }
            Ok(first)
        }
    }
}

/// The argon2id hash of a password read from `source` (slow by design: off the async workers).
pub async fn read_hashed(source: Source) -> anyhow::Result<String> {
    let password = read(source)?;
    Ok(tokio::task::spawn_blocking(move || keyward_core::password::hash(&password)).await?)
}

/// One prompt on the terminal; the typed characters are not echoed.
fn prompt(text: &str) -> anyhow::Result<String> {
    rpassword::prompt_password(text)
        .map_err(|e| anyhow!("cannot ask for the password on the terminal ({e}); pipe it with --password-stdin"))
}

fn check(password: &str, what: &str) -> anyhow::Result<()> {
    if password.chars().count() < MIN_CHARS {
        bail!("{what} must have at least {MIN_CHARS} characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_unless_a_person_is_at_the_terminal() {
        assert_eq!(Source::pick(true, true), Source::Stdin, "--password-stdin wins");
        assert_eq!(Source::pick(true, false), Source::Stdin);
        assert_eq!(Source::pick(false, false), Source::Stdin, "a pipe: nobody to ask");
        assert_eq!(Source::pick(false, true), Source::Terminal);
    }

    #[test]
    fn eight_characters_at_least() {
        assert!(check("1234567", "the password").unwrap_err().to_string().contains("at least 8"));
        assert!(check("12345678", "the password").is_ok());
        assert!(check("ééééééé", "the password").is_err(), "characters, not bytes");
    }
}
