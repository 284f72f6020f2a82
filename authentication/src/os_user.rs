//! The OS accounts of the machine a process runs on: the user a scheduler registers as (its
//! own, as Mesos's drivers do) and the account an agent runs a task as (`--switch-user`).
//!
//! ```
//! use authentication::os_user;
//!
//! let root = os_user::lookup("root").unwrap();
//! assert_eq!((root.uid, root.gid), (0, 0));
//! assert_eq!(os_user::name_of(0).as_deref(), Some("root"));
//! assert_eq!(os_user::group_name_of(0).as_deref(), Some("root"));
//! assert!(!os_user::current().is_empty());
//! assert!(os_user::lookup("no-such-user-here").is_none());
//! ```

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// An account from the passwd database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home directory.
    pub home: PathBuf,
}

/// Bytes for the strings of one passwd entry (glibc's suggested size is 1 KiB; NSS modules
/// with long entries need more).
const BUFFER_BYTES: usize = 16 * 1024;

/// The account named `name`, if there is one.
pub fn lookup(name: &str) -> Option<Account> {
    let c_name = CString::new(name).ok()?;
    let mut buf = vec![0u8; BUFFER_BYTES];
    // SAFETY: passwd is plain data; getpwnam_r fills `pwd` with pointers into `buf` (whose
    // length it is given) and sets `result` to null or to `pwd`; `c_name` outlives the call.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null()).then(|| account(&pwd))
    }
}

/// The name of the account with `uid`, if there is one.
pub fn name_of(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; BUFFER_BYTES];
    // SAFETY: as in `lookup`.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null()).then(|| account(&pwd).name)
    }
}

/// The name of the group with `gid`, if there is one.
pub fn group_name_of(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; BUFFER_BYTES];
    // SAFETY: group is plain data; getgrgid_r fills `grp` with pointers into `buf` (whose
    // length it is given) and sets `result` to null or to `grp`.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        let rc = libc::getgrgid_r(
            gid,
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null())
            .then(|| CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned())
    }
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The name this process runs as: its account's, else its uid in decimal (a container may
/// run under a uid no passwd entry names).
pub fn current() -> String {
    let uid = current_uid();
    name_of(uid).unwrap_or_else(|| uid.to_string())
}

/// # Safety
/// `pwd` was filled by a successful `getpw*_r`, and its buffer is still alive.
unsafe fn account(pwd: &libc::passwd) -> Account {
    Account {
        name: CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: PathBuf::from(CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned()),
    }
}
