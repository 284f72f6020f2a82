//! The flags a daemon runs with, as Mesos's `/flags` and `GET_FLAGS` list them: every flag of
//! the daemon's command line by its long name, with the value in effect (given, from its
//! `KEEL_*` variable, or the default). Flags without a value are left out.

use std::ffi::OsString;

/// The values in effect of `A`'s flags when the command line is `args` (program name first);
/// empty if `args` is not a command line of `A` (a daemon run in-process).
pub fn flag_values<A: clap::Args>(
    args: impl IntoIterator<Item = OsString>,
) -> Vec<(String, String)> {
    let command = A::augment_args(clap::Command::new("daemon").no_binary_name(false));
    let Ok(matches) = command.clone().try_get_matches_from(args) else {
        return Vec::new();
    };
    let mut values: Vec<(String, String)> = command
        .get_arguments()
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let name = arg.get_long().unwrap_or(id).replace('-', "_");
            let raw = matches.get_raw(id)?;
            let joined: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
            Some((name, joined.join(",")))
        })
        .collect();
    values.sort();
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Args)]
    struct Demo {
        /// A port.
        #[arg(long, default_value_t = 5050)]
        port: u16,
        /// A switch.
        #[arg(long)]
        secure: bool,
        /// A list.
        #[arg(long = "role", value_delimiter = ',')]
        roles: Vec<String>,
        /// Unset.
        #[arg(long)]
        zk: Option<String>,
    }

    #[test]
    fn given_defaulted_and_listed_values_appear_under_mesos_names() {
        let args = ["keel-master", "--role", "a,b", "--secure"].map(OsString::from);
        let values = flag_values::<Demo>(args);
        assert_eq!(
            values,
            [
                ("port".to_owned(), "5050".to_owned()),
                ("role".to_owned(), "a,b".to_owned()),
                ("secure".to_owned(), "true".to_owned()),
            ]
        );
        assert!(flag_values::<Demo>(["x", "--nonsense"].map(OsString::from)).is_empty());
    }
}
