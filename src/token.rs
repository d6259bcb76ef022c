//! OAuth2 access tokens from `--oauth2-token-command`: the first line of the command's output
//! (run like `--password-command`, but bounded in time). A token is kept and reused for new
//! connections; the command runs again when it is older than [`MAX_AGE`] or the server refused
//! it (tokens expire, typically after an hour). Tokens never appear in logs or errors.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::password::command_first_line;
use crate::secret::Secret;

/// Longest a token command may run (a token helper refreshing over the network).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// A token older than this is asked for again before use (the helper caches its own).
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);

const WHAT: &str = "--oauth2-token-command";

/// One token, and which run of the command gave it.
#[derive(Clone)]
pub struct Token {
    pub secret: Secret,
    run: u64,
}

pub struct TokenSource {
    command: String,
    /// The last token and when it came. Held while the command runs, so connections opened
    /// together run it once.
    cached: Mutex<Option<(Token, Instant)>>,
    runs: Mutex<u64>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSource(***)")
    }
}

impl TokenSource {
    pub fn new(command: String) -> TokenSource {
        TokenSource {
            command,
            cached: Mutex::new(None),
            runs: Mutex::new(0),
        }
    }

    /// The kept token, or a new one when there is none yet or it is old.
    pub fn get(&self) -> Result<Token, String> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, at)) = cached.as_ref() {
            if at.elapsed() < MAX_AGE {
                return Ok(t.clone());
            }
        }
        self.run(&mut cached)
    }

    /// A new token after the server refused `stale`: the command runs again, unless another
    /// connection already got a newer token meanwhile.
    pub fn renew(&self, stale: &Token) -> Result<Token, String> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, _)) = cached.as_ref() {
            if t.run > stale.run {
                return Ok(t.clone());
            }
        }
        self.run(&mut cached)
    }

    fn run(&self, cached: &mut Option<(Token, Instant)>) -> Result<Token, String> {
        let secret = command_first_line(&self.command, WHAT, Some(COMMAND_LIMIT))?;
        if !secret.expose().bytes().all(|b| (0x21..0x7f).contains(&b)) {
            // RFC 6750 b64token: printable ASCII without spaces.
            return Err(format!(
                "{WHAT}: the first line is not an access token (spaces or unexpected characters)"
            ));
        }
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        *runs += 1;
        let token = Token { secret, run: *runs };
        log::debug!("{WHAT}: got a new access token (run {})", token.run);
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_then_renewed_once() {
        let dir = tempfile::tempdir().unwrap();
        let n = dir.path().join("n");
        let cmd = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo tok$n",
            n.display()
        );
        let src = TokenSource::new(cmd);
        let a = src.get().unwrap();
        assert_eq!(a.secret.expose(), "tok1");
        assert_eq!(src.get().unwrap().secret.expose(), "tok1", "kept");
        let b = src.renew(&a).unwrap();
        assert_eq!(b.secret.expose(), "tok2");
        // A second connection refused with the old token takes the new one, no new run.
        assert_eq!(src.renew(&a).unwrap().secret.expose(), "tok2");
        assert_eq!(src.renew(&b).unwrap().secret.expose(), "tok3");
        assert!(!format!("{src:?}").contains("tok"));
    }

    #[test]
    fn not_a_token() {
        let e = TokenSource::new("echo 'two words'".into())
            .get()
            .err()
            .unwrap();
        assert!(
            e.contains("not an access token") && !e.contains("words"),
            "{e}"
        );
        let e = TokenSource::new("exit 2".into()).get().err().unwrap();
        assert!(e.starts_with("--oauth2-token-command failed"), "{e}");
    }
}
