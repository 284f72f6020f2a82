//! The token each executor proves itself with to its agent's `/api/v1/executor` on a secure
//! agent (Mesos's `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, sent as `Authorization: Bearer …`):
//! an HMAC of the executor's framework and id under a key the agent keeps in its meta
//! directory, so that executors an earlier run of the agent started still prove themselves to
//! a restarted one, and no executor can make another's token.

use std::path::Path;

/// The file in the meta directory holding the key.
pub const KEY_FILE: &str = "executor-token.key";

/// What issues and checks executor tokens.
#[derive(Clone)]
pub struct ExecutorTokens {
    key: String,
}

impl std::fmt::Debug for ExecutorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecutorTokens")
    }
}

/// The nonce that keeps these MACs apart from any other the key could make.
const PURPOSE: &[u8] = b"keel executor token";

impl ExecutorTokens {
    /// The agent's key from `meta_dir`, made (readable by root only) on first use.
    pub fn load_or_create(meta_dir: &Path) -> std::io::Result<ExecutorTokens> {
        let file = meta_dir.join(KEY_FILE);
        if let Ok(key) = std::fs::read_to_string(&file) {
            if !key.trim().is_empty() {
                return Ok(ExecutorTokens {
                    key: key.trim().to_owned(),
                });
            }
        }
        std::fs::create_dir_all(meta_dir)?;
        let key = authentication::digest::hex(&authentication::nonce());
        libactor::tls::dir::write_file(&file, &key, true)?;
        Ok(ExecutorTokens { key })
    }

    /// The token of executor `executor` of `framework`.
    pub fn token(&self, framework: &str, executor: &str) -> String {
        authentication::digest::hex(&authentication::proof(
            &self.key,
            PURPOSE,
            &subject(framework, executor),
        ))
    }

    /// Whether `authorization` (an `Authorization` header) carries that executor's token.
    pub fn verify(&self, framework: &str, executor: &str, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let Some(mac) = unhex(token.trim()) else {
            return false;
        };
        authentication::verify(&self.key, PURPOSE, &subject(framework, executor), &mac)
    }
}

fn subject(framework: &str, executor: &str) -> String {
    format!(
        "{}/{}",
        framework.len(),
        format_args!("{framework}/{executor}")
    )
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_proves_its_executor_only_and_survives_a_restart() {
        let meta = tempfile::tempdir().unwrap();
        let tokens = ExecutorTokens::load_or_create(meta.path()).unwrap();
        let t = tokens.token("F1", "e1");
        let bearer = format!("Bearer {t}");
        assert!(tokens.verify("F1", "e1", Some(&bearer)));
        assert!(!tokens.verify("F1", "e2", Some(&bearer)));
        assert!(!tokens.verify("F1", "e1", Some(&t)), "Bearer only");
        assert!(!tokens.verify("F1", "e1", Some("Bearer zz")));
        let again = ExecutorTokens::load_or_create(meta.path()).unwrap();
        assert!(again.verify("F1", "e1", Some(&bearer)));
    }
}
