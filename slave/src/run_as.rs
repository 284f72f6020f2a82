//! Running a task as its user (Mesos's `--switch_user`): the user's account looked up on the
//! agent, its sandbox given to it, and its command started through `setpriv` (util-linux),
//! which takes the user's uid, gid and supplementary groups just before `exec`.
//!
//! The switch happens last so that everything before it still runs as the agent: joining the
//! container's cgroups (root-owned `cgroup.procs` files) and, for a checkpointed executor, the
//! supervisor that records its pid and exit status in the agent's meta directory. The agent
//! still starts every task with `posix_spawn` (no fork of the agent, see
//! [`crate::task_process`]).
//!
//! ```
//! use slave::run_as::RunAs;
//!
//! // No switch for an empty user or the agent's own.
//! assert!(RunAs::for_user("").unwrap().is_none());
//! let me = authentication::os_user::current();
//! assert!(RunAs::for_user(&me).unwrap().is_none());
//! assert!(RunAs::for_user("no-such-user-here").is_err());
//! ```

use std::path::{Path, PathBuf};

use authentication::os_user;

/// Where `setpriv` is (util-linux, present on every Debian and most other distributions).
pub const SETPRIV: &str = "/usr/bin/setpriv";

/// A user a task runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The account's name.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home directory (`HOME` in the task's environment).
    pub home: PathBuf,
}

/// Why a task cannot run as its user.
#[derive(Debug, thiserror::Error)]
pub enum RunAsError {
    /// No such account on the agent.
    #[error("user {0:?} does not exist on this agent")]
    NoSuchUser(String),
    /// Only root may run processes as another user.
    #[error(
        "the agent runs as uid {agent}, not root, so it cannot run tasks as {user:?} (run it as root, or with --switch-user=false to run tasks as itself)"
    )]
    NotRoot {
        /// The agent's effective uid.
        agent: u32,
        /// The user asked for.
        user: String,
    },
    /// `setpriv` is missing.
    #[error("{SETPRIV} is missing: install util-linux to run tasks as their users")]
    NoSetpriv,
}

impl RunAs {
    /// The user a task should switch to: `None` when `user` is empty or is the agent's own
    /// user (nothing to switch), an error when it cannot be done.
    pub fn for_user(user: &str) -> Result<Option<RunAs>, RunAsError> {
        if user.is_empty() {
            return Ok(None);
        }
        let account =
            os_user::lookup(user).ok_or_else(|| RunAsError::NoSuchUser(user.to_owned()))?;
        let agent = os_user::current_uid();
        if account.uid == agent {
            return Ok(None);
        }
        if agent != 0 {
            return Err(RunAsError::NotRoot {
                agent,
                user: user.to_owned(),
            });
        }
        if !Path::new(SETPRIV).exists() {
            return Err(RunAsError::NoSetpriv);
        }
        Ok(Some(RunAs {
            user: account.name,
            uid: account.uid,
            gid: account.gid,
            home: account.home,
        }))
    }

    /// The words put before the task's program: `setpriv` taking the user's ids and groups.
    pub fn command_prefix(&self) -> Vec<String> {
        vec![
            SETPRIV.to_owned(),
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--init-groups".to_owned(),
            "--".to_owned(),
        ]
    }

    /// The environment a login as the user would have (`USER`, `LOGNAME`, `HOME`).
    pub fn env(&self) -> [(String, String); 3] {
        [
            ("USER".into(), self.user.clone()),
            ("LOGNAME".into(), self.user.clone()),
            ("HOME".into(), self.home.display().to_string()),
        ]
    }

    /// Gives `dir` and everything in it (what the fetcher put there, the output files) to
    /// the user; symlinks themselves, never what they point at.
    pub fn own(&self, dir: &Path) -> std::io::Result<()> {
        let mut stack = vec![dir.to_owned()];
        while let Some(path) = stack.pop() {
            std::os::unix::fs::lchown(&path, Some(self.uid), Some(self.gid))?;
            if std::fs::symlink_metadata(&path)?.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    stack.push(entry?.path());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_user_is_switched_to_and_the_sandbox_given_to_it() {
        if os_user::current_uid() != 0 {
            return;
        }
        let nobody = RunAs::for_user("nobody").unwrap().expect("root switches");
        assert_eq!(
            nobody.command_prefix()[1],
            format!("--reuid={}", nobody.uid)
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
        nobody.own(dir.path()).unwrap();
        use std::os::unix::fs::MetadataExt;
        let uid = |p: &str| std::fs::symlink_metadata(dir.path().join(p)).unwrap().uid();
        assert_eq!(
            (uid("sub"), uid("sub/f"), uid("link")),
            (nobody.uid, nobody.uid, nobody.uid)
        );
        assert_eq!(
            std::fs::metadata("/etc/hostname").unwrap().uid(),
            0,
            "not followed"
        );
    }
}
