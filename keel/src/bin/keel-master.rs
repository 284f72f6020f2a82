//! keel-master: runs the master process and its allocator on one node. Agents and frameworks
//! find it at `master@IP:PORT`.

use anyhow::{bail, Context as _};
use clap::Parser;
use keel::local_cluster::fresh_master_id;
use master::master::{AuthenticationPolicy, Master, RevocationPolicy};

#[derive(Debug, Parser)]
#[command(name = "keel-master", version, about = "Run a Keel master.")]
struct Flags {
    /// Address to listen on.
    #[arg(long, env = "KEEL_IP", default_value = "127.0.0.1")]
    ip: std::net::IpAddr,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, env = "KEEL_PORT", default_value_t = 5050)]
    port: u16,
    /// A file of `principal secret` lines: who may authenticate.
    #[arg(long, env = "KEEL_CREDENTIALS")]
    credentials: Option<std::path::PathBuf>,
    /// Refuse agents that have not authenticated (needs --credentials).
    #[arg(long, env = "KEEL_AUTHENTICATE_AGENTS")]
    authenticate_agents: bool,
    /// Refuse frameworks that have not authenticated (needs --credentials).
    #[arg(long, env = "KEEL_AUTHENTICATE_FRAMEWORKS")]
    authenticate_frameworks: bool,
    /// Revoke tasks above a framework's fair share while another framework starves, this many
    /// seconds after telling it (off when unset).
    #[arg(long, env = "KEEL_REVOCATION_GRACE_SECONDS")]
    revocation_grace_seconds: Option<f64>,
    /// Resources a role keeps whatever happens, `ROLE=RESOURCES` (repeatable), e.g.
    /// `--guarantee 'prod=cpus:8;mem:16384'`.
    #[arg(long = "guarantee", env = "KEEL_GUARANTEES", value_delimiter = ',')]
    guarantees: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    keel::logging::init("info");
    let node = libactor::Node::builder()
        .bind(std::net::SocketAddr::new(flags.ip, flags.port))
        .start()
        .with_context(|| format!("listening on {}:{}", flags.ip, flags.port))?;
    let credentials = flags
        .credentials
        .as_deref()
        .map(authentication::Credentials::from_file)
        .transpose()?;
    if (flags.authenticate_agents || flags.authenticate_frameworks) && credentials.is_none() {
        bail!("--authenticate-agents and --authenticate-frameworks need --credentials");
    }
    if let Some(c) = &credentials {
        tracing::info!(principals = ?c.principals().collect::<Vec<_>>(), "credentials loaded");
    }
    let policy = AuthenticationPolicy {
        credentials,
        agents: flags.authenticate_agents,
        frameworks: flags.authenticate_frameworks,
    };
    let handle = Master::spawn_with(&node, &fresh_master_id(), policy)?;
    if let Some(grace) = flags.revocation_grace_seconds {
        if !(grace.is_finite() && grace >= 0.0) {
            bail!("--revocation-grace-seconds must be a non-negative number");
        }
        let mut guarantees = std::collections::HashMap::new();
        for g in &flags.guarantees {
            let (role, resources) = g
                .split_once('=')
                .with_context(|| format!("--guarantee {g}: expected ROLE=RESOURCES"))?;
            let resources: resources::Resources = resources
                .parse()
                .with_context(|| format!("--guarantee {g}"))?;
            guarantees.insert(role.to_owned(), resources);
        }
        let policy = RevocationPolicy {
            enabled: true,
            grace_period: std::time::Duration::from_secs_f64(grace),
            guarantees,
            ..Default::default()
        };
        handle
            .master
            .dispatch(move |m, ctx| m.set_revocation(ctx, policy));
    } else if !flags.guarantees.is_empty() {
        bail!("--guarantee needs --revocation-grace-seconds");
    }
    // The first stdout line says where the master is, for scripts and tests.
    println!("master {}", handle.master.pid());
    tracing::info!(pid = %handle.master.pid(), "master started");
    keel::shutdown_signal::terminated().await;
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}
