//! keel-repair: Autopilot's repair service as a daemon, carrying the device manager's repair
//! orders out with an operator's commands (the `command` driver: an IPMI or cloud API script
//! per action, run with `KEEL_MACHINE_ID`, `KEEL_HOSTNAME` and `KEEL_REPAIR_ACTION` set). It
//! follows the leading master (and the device manager beside it) through ZooKeeper.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use autopilot::device_manager::device_manager_beside;
use autopilot::repair_driver::CommandDriver;
use autopilot::repair_service::{RepairService, REPAIR_SERVICE_ID};
use clap::Parser;
use keel::master_address::{follow, MasterSource};
use protos::autopilot::RepairAction;

keel::global_allocator!();

#[derive(Debug, Parser)]
#[command(
    name = "keel-repair",
    version,
    about = "Run Autopilot's repair service with a command per repair action."
)]
struct Flags {
    /// The master: `host:port`, `master@host:port`, or `zk://host:port,…/path`.
    #[arg(long, env = "KEEL_MASTER", default_value = "127.0.0.1:5050")]
    master: String,
    /// Address to listen on.
    #[arg(long, env = "KEEL_IP", default_value = "127.0.0.1")]
    ip: std::net::IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, env = "KEEL_PORT", default_value_t = 0)]
    port: u16,
    /// The shell command that reboots a machine.
    #[arg(long, env = "KEEL_REBOOT_COMMAND")]
    reboot_command: Option<String>,
    /// The shell command that reimages a machine.
    #[arg(long, env = "KEEL_REIMAGE_COMMAND")]
    reimage_command: Option<String>,
    /// The shell command that takes a machine out for replacement.
    #[arg(long, env = "KEEL_REPLACE_COMMAND")]
    replace_command: Option<String>,
    /// A file with `principal secret`: the repair service authenticates with the master (which
    /// gives orders only to an authenticated repair service when it has credentials).
    #[arg(long, env = "KEEL_CREDENTIAL")]
    credential: Option<std::path::PathBuf>,
    /// Mutual TLS (`--tls-dir`, role `repair`) or `--insecure`.
    #[command(flatten)]
    security: keel::security_flags::SecurityFlags,
    /// Seconds one command may run before it is killed and the repair reported failed.
    #[arg(
        long,
        env = "KEEL_REPAIR_COMMAND_TIMEOUT_SECONDS",
        default_value = "10m",
        value_parser = keel::duration_flag::positive_up_to_a_day()
    )]
    command_timeout_seconds: keel::duration_flag::Seconds,
}

/// How long to wait for ZooKeeper to name a leading master at start.
const MASTER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    keel::logging::init("info");
    let timeout = flags.command_timeout_seconds.0;
    let mut commands = BTreeMap::new();
    for (action, command) in [
        (RepairAction::Reboot, &flags.reboot_command),
        (RepairAction::Reimage, &flags.reimage_command),
        (RepairAction::Replace, &flags.replace_command),
    ] {
        if let Some(command) = command {
            commands.insert(action, command.clone());
        }
    }
    if commands.is_empty() {
        bail!("give at least one of --reboot-command, --reimage-command, --replace-command");
    }
    let source =
        MasterSource::parse(&flags.master).with_context(|| format!("--master {}", flags.master))?;
    let (master, detector) = source.resolve(MASTER_WAIT).await?;
    let tls = flags.security.tls("keel-repair")?;
    if tls
        .as_ref()
        .is_some_and(|t| !t.identity().has_role(authentication::roles::REPAIR))
    {
        bail!("the certificate in --tls-dir lacks the repair role");
    }
    let node = keel::security_flags::secure(libactor::Node::builder(), tls)
        .bind(std::net::SocketAddr::new(flags.ip, flags.port))
        .start()
        .with_context(|| format!("listening on {}:{}", flags.ip, flags.port))?;
    let driver = CommandDriver::new(commands, timeout);
    let mut service = RepairService::new(device_manager_beside(&master)?, Arc::new(driver));
    if let Some(path) = &flags.credential {
        service = service.with_credential(authentication::Credential::from_file(path)?);
    }
    let repair = node.spawn_ref(REPAIR_SERVICE_ID, service)?;
    let _following = detector.map(|d| {
        let repair = repair.clone();
        follow(
            d,
            master.clone(),
            move |leader| match device_manager_beside(&leader) {
                Ok(dm) => repair.dispatch(move |r, ctx| r.set_device_manager(ctx, dm)),
                Err(_) => true,
            },
        )
    });
    keel::announce!("repair {}", repair.pid());
    tracing::info!(pid = %repair.pid(), %master, "repair service started");
    keel::shutdown_signal::terminated().await;
    node.shutdown().await;
    Ok(())
}
