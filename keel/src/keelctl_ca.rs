//! `keelctl ca`: a cluster certificate authority on disk. `init` makes the CA (`ca.crt`,
//! `ca.key`); `issue` gives a principal its TLS directory (`ca.crt`, `node.crt`, `node.key`)
//! for `--tls-dir`.
//!
//! ```text
//! keelctl ca init --dir /etc/keel/ca
//! keelctl ca issue --ca /etc/keel/ca --principal master --role master --host 10.0.0.1 --out /etc/keel/master
//! keelctl ca issue --ca /etc/keel/ca --principal agent-7 --role agent --host 10.0.0.7 --out /etc/keel/agent
//! keelctl ca issue --ca /etc/keel/ca --principal ops --role operator --role framework --host 10.0.0.2 --out ~/.keel
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use libactor::tls::ca::{CertRequest, ClusterCa};
use libactor::tls::dir;

/// The CA's private key, beside its `ca.crt`.
pub const CA_KEY: &str = "ca.key";

/// `keelctl ca`'s subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Make a new cluster CA in DIR (`ca.crt`, and `ca.key` readable by its owner only).
    Init {
        /// Where to write it (created; an existing CA there is never overwritten).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "keel cluster CA")]
        name: String,
    },
    /// Issue a principal a certificate, written as a TLS directory for `--tls-dir`.
    Issue {
        /// The CA's directory (from `keelctl ca init`).
        #[arg(long)]
        ca: PathBuf,
        /// Who the certificate proves.
        #[arg(long)]
        principal: String,
        /// A role it acts in: master, agent, framework, operator, repair (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// An IP or DNS name its node listens on and advertises (repeatable).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Days it stays valid.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Where to write `ca.crt`, `node.crt` and `node.key`.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `keelctl ca` command.
pub fn run(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init { dir, name } => {
            if dir.join(dir::CA_CERT).exists() || dir.join(CA_KEY).exists() {
                bail!("{} already holds a CA; not overwriting it", dir.display());
            }
            let ca = ClusterCa::generate(&name)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir::write_file(&dir.join(dir::CA_CERT), ca.cert_pem(), false)?;
            dir::write_file(&dir.join(CA_KEY), &ca.key_pem(), true)?;
            println!("CA {name:?} written to {}", dir.display());
        }
        CaCommand::Issue {
            ca,
            principal,
            roles,
            hosts,
            days,
            out,
        } => {
            let ca = load(&ca)?;
            for role in &roles {
                if !authentication::roles::ALL.contains(&role.as_str()) {
                    bail!(
                        "unknown role {role:?}; roles are {}",
                        authentication::roles::ALL.join(", ")
                    );
                }
            }
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let request = CertRequest {
                validity: Duration::from_secs(days.max(1) * 24 * 3600),
                ..CertRequest::new(&principal, &roles, &hosts)
            };
            let cert = ca.issue(&request)?;
            dir::write(&out, ca.cert_pem(), &cert)?;
            println!(
                "{principal} ({}) for {} written to {}",
                roles.join(","),
                hosts.join(","),
                out.display()
            );
        }
    }
    Ok(())
}

/// The CA kept in `dir`.
pub fn load(dir: &Path) -> anyhow::Result<ClusterCa> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("reading {}", dir.join(name).display()))
    };
    Ok(ClusterCa::from_pem(&read(dir::CA_CERT)?, &read(CA_KEY)?)?)
}
