//! keelctl, the operator's command line (the `keelctl` binary parses [`KeelctlFlags`] and calls
//! [`run`]). Reads the cluster from the master's `/master/state`,
//! runs one-off commands as a framework (`execute`, like `mesos-execute`), posts control
//! messages to any process (`send`), and speaks Mesos's operator API for maintenance, drains
//! and the event stream (`keelctl_operator`). Human tables by default, `--json` for scripts.

use crate::keelctl_operator::AgentAction;
use std::process::ExitCode;

use crate::example_runs::run_batch;
use crate::master_address::MasterSource;
use crate::operator_client::OperatorAuth;
use crate::security_flags::SecurityFlags;
use crate::tables;
use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use frameworks::examples::batch::{BatchEvent, BatchSpec};
use libactor::http_client::get_json_over;
use protos::v1::TaskState;
use resources::Resources;
use serde_json::json;

/// keelctl's flags and subcommand.
#[derive(Debug, Parser)]
#[command(name = "keelctl", version, about = "Operate a Keel cluster.")]
pub struct KeelctlFlags {
    /// The master: `host:port`, `master@host:port`, or `zk://host:port,…/path` for the leader
    /// elected in ZooKeeper.
    #[arg(
        long,
        global = true,
        env = "KEEL_MASTER",
        default_value = "127.0.0.1:5050"
    )]
    master: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// keelctl's own identity for `execute` (role `framework`) and `send`: `--tls-dir DIR`,
    /// or `--insecure` against an insecure cluster.
    #[command(flatten)]
    security: SecurityFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The master, its agents and frameworks.
    State,
    /// Registered agents with their resources.
    Agents,
    /// Registered frameworks.
    Frameworks,
    /// Live tasks of every framework.
    Tasks,
    /// Shared-state (Omega) scheduling: the cell's subscribers and the latest transactions.
    Transactions,
    /// Run a command as tasks of a one-off framework; streams their states and exits non-zero
    /// if any did not finish.
    Execute {
        /// The shell command each task runs.
        #[arg(long)]
        command: String,
        /// CPUs per task.
        #[arg(long, default_value_t = 0.1)]
        cpus: f64,
        /// Memory per task, MiB.
        #[arg(long, default_value_t = 32.0)]
        mem: f64,
        /// How many tasks.
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// The framework's name.
        #[arg(long, default_value = "keelctl-execute")]
        name: String,
        /// The address keelctl listens on for the master's messages.
        #[arg(long, env = "KEEL_IP", default_value = "127.0.0.1")]
        ip: std::net::IpAddr,
        /// A file with `principal secret` to authenticate the framework with.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// Autopilot: every machine the device manager knows, with its health.
    Machines,
    /// Autopilot: one machine's state, last watchdog results and history.
    Machine {
        /// The machine's id (its hostname).
        id: String,
    },
    /// Autopilot: the last watchdog results of every machine.
    Watchdogs,
    /// Autopilot: the device manager's audit log of changes to the ground truth.
    Audit {
        /// Only records after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
    /// Autopilot: drain a machine and repair it now (it then goes through Probation).
    Repair {
        /// The machine's id (its hostname).
        machine: String,
        /// What to do: reboot, reimage or replace.
        #[arg(long)]
        action: String,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// End a framework: its tasks are killed, its resources freed, its scheduler told
    /// (`POST /master/teardown`; needs the operator role, and `teardown_frameworks` under
    /// the master's --acls).
    Teardown {
        /// The framework's id.
        framework: String,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// Autopilot: upload a manifest's files and roll it out one scale unit at a time, with a
    /// progress bar per unit; exits non-zero if it rolled back.
    Deploy {
        /// The manifest (TOML); file sources are read relative to it.
        manifest: std::path::PathBuf,
        /// Machines per scale unit.
        #[arg(long, default_value_t = autopilot::rollout::DEFAULT_UNIT_SIZE)]
        unit_size: u32,
        /// Percent of a unit that must be Healthy on the new version to go on.
        #[arg(long, default_value_t = autopilot::rollout::DEFAULT_HEALTHY_THRESHOLD * 100.0)]
        healthy_threshold: f64,
        /// Start the rollout and return without following it.
        #[arg(long)]
        no_wait: bool,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// Autopilot: the rollout under way (or the last one).
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Autopilot: stop the running rollout and take every updated unit back.
    Rollback {
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// Autopilot: make every machine sync its manifest and run its watchdogs now.
    Kick {
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// Post a control message to a process: `send master@127.0.0.1:5050 ReviveOffersMessage
    /// '{"frameworkId": {"value": "…"}}'`.
    Send {
        /// The receiving process.
        to: String,
        /// The message's name (short or full).
        message: String,
        /// The message as JSON (protobuf's JSON mapping).
        #[arg(value_name = "JSON")]
        body: String,
        /// The sender the message names (default `keelctl@HOST:1`). A claim: a secure
        /// receiver believes only what keelctl's certificate proves.
        #[arg(long)]
        from: Option<String>,
    },
    /// Maintenance (the operator API): schedule machines, take them down, bring them back.
    Maintenance {
        #[command(subcommand)]
        command: crate::keelctl_operator::MaintenanceCommand,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL", global = true)]
        credential: Option<std::path::PathBuf>,
    },
    /// Drain an agent's machine: out of offers, its tasks killed (DRAIN_AGENT).
    Drain {
        /// The agent's id.
        agent: String,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// Offer a drained agent's machine again (REACTIVATE_AGENT).
    Reactivate {
        /// The agent's id.
        agent: String,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// Roles' quota limits (GET_QUOTA); `set ROLE LIMITS` or `remove ROLE` changes one
    /// (UPDATE_QUOTA).
    Quota {
        #[command(subcommand)]
        command: Option<crate::keelctl_operator::QuotaCommand>,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL", global = true)]
        credential: Option<std::path::PathBuf>,
    },
    /// Assert that an agent's machine is never coming back (MARK_AGENT_GONE): its tasks end
    /// GONE_BY_OPERATOR now and its id is refused for ever.
    MarkGone {
        /// The agent's id.
        agent: String,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// Follow the master's events (the operator API's SUBSCRIBE): agents, frameworks and tasks
    /// as they change, one line each (`--json`: Mesos's JSON, one object per line).
    Events {
        /// Stop after this many events (heartbeats aside).
        #[arg(long)]
        count: Option<usize>,
        /// A file with `principal secret`, when the master has credentials.
        #[arg(long, env = "KEEL_CREDENTIAL")]
        credential: Option<std::path::PathBuf>,
    },
    /// A cluster certificate authority: make one, issue certificates for `--tls-dir`.
    Ca {
        #[command(subcommand)]
        command: crate::keelctl_ca::CaCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Each scale unit's progress.
    Status,
}

/// How long keelctl waits for ZooKeeper to name a leading master.
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one keelctl command; the exit code says whether what it ran succeeded.
pub async fn run(flags: KeelctlFlags) -> anyhow::Result<ExitCode> {
    if let Command::Ca { command } = flags.command {
        crate::keelctl_ca::run(command)?;
        return Ok(ExitCode::SUCCESS);
    }
    let source =
        MasterSource::parse(&flags.master).with_context(|| format!("--master {}", flags.master))?;
    // With ZooKeeper, ask whichever master leads now.
    let (master, mut detector) = source.resolve(LEADER_WAIT).await?;
    // Reads go over HTTPS with keelctl's certificate when it has one (a master with
    // --authenticate-http-readonly wants it).
    let reader = match &flags.security.tls_dir {
        Some(dir) => Some(libactor::tls::dir::load(dir)?),
        None => None,
    };
    let reader = reader.as_ref();
    let state = || async {
        get_json_over(master.address(), reader, "/master/state")
            .await
            .with_context(|| format!("reading the state of {master}"))
    };
    match flags.command {
        Command::State => {
            let state = state().await?;
            print_either(flags.json, &state, || tables::summary(&state));
        }
        Command::Agents => {
            let state = state().await?;
            print_either(flags.json, &state["slaves"], || tables::agents(&state));
        }
        Command::Frameworks => {
            let state = state().await?;
            print_either(flags.json, &state["frameworks"], || {
                tables::frameworks(&state)
            });
        }
        Command::Tasks => {
            let state = state().await?;
            let tasks: Vec<&serde_json::Value> = state["frameworks"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|f| f["tasks"].as_array().into_iter().flatten())
                .collect();
            print_either(flags.json, &json!(tasks), || tables::tasks(&state));
        }
        Command::Transactions => {
            let state = state().await?;
            print_either(flags.json, &state["omega"], || tables::transactions(&state));
        }
        Command::Execute {
            command,
            cpus,
            mem,
            instances,
            name,
            ip,
            credential,
        } => {
            let credential = read_credential(credential.as_deref())?;
            let launch = Launch {
                command,
                cpus,
                mem,
                instances,
                name,
                ip,
                credential,
                tls: flags.security.tls("keelctl execute")?,
            };
            return execute(&master, detector.take(), flags.json, launch).await;
        }
        Command::Machines => {
            let v = device_manager(&master, reader, "/machines").await?;
            print_either(flags.json, &v, || crate::machine_tables::machines(&v));
        }
        Command::Machine { id } => {
            let path = format!("/machine?id={}", percent_encode(&id));
            let v = device_manager(&master, reader, &path).await?;
            print_either(flags.json, &v, || crate::machine_tables::machine(&v));
        }
        Command::Watchdogs => {
            let v = device_manager(&master, reader, "/machines").await?;
            let mut rows = Vec::new();
            for m in v["machines"].as_array().into_iter().flatten() {
                let id = m["id"].as_str().unwrap_or_default();
                let path = format!("/machine?id={}", percent_encode(id));
                let detail = device_manager(&master, reader, &path).await?;
                for w in detail["watchdogs"].as_array().into_iter().flatten() {
                    rows.push(json!({"machine": id, "name": w["name"], "status": w["status"], "text": w["text"]}));
                }
            }
            let rows = json!(rows);
            print_either(flags.json, &rows, || {
                let table: Vec<Vec<String>> = rows
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        ["machine", "name", "status", "text"]
                            .map(|k| tables::text(&r[k]))
                            .to_vec()
                    })
                    .collect();
                tables::render(&["MACHINE", "WATCHDOG", "STATUS", "TEXT"], &table)
            });
        }
        Command::Audit { since } => {
            let v = device_manager(&master, reader, &format!("/audit?since={since}")).await?;
            print_either(flags.json, &v["audit"], || crate::machine_tables::audit(&v));
        }
        Command::Repair {
            machine,
            action,
            credential,
        } => {
            let operator = operator_auth(credential.as_deref(), &flags.security)?;
            if !flags.json {
                println!(
                    "asking the device manager beside {master} to drain {machine} and {action} it"
                );
            }
            let body = json!({"machine": machine, "action": action});
            let v = post_json(&master, "/device-manager/repair", body, &operator).await?;
            print_either(flags.json, &v, || {
                format!(
                    "accepted: {} will be drained and get {} (by {})\n",
                    tables::text(&v["machine"]),
                    tables::text(&v["action"]),
                    tables::text(&v["operator"]),
                )
            });
        }
        Command::Teardown {
            framework,
            credential,
        } => {
            let operator = operator_auth(credential.as_deref(), &flags.security)?;
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("frameworkId", &framework)
                .finish();
            let headers = [(
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            )];
            let reply = operator
                .post(master.address(), "/master/teardown", &headers, body.into())
                .await?;
            if reply.status != 200 {
                bail!(
                    "teardown refused: {} {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body).trim()
                );
            }
            println!("framework {framework} torn down");
        }
        Command::Deploy {
            manifest,
            unit_size,
            healthy_threshold,
            no_wait,
            credential,
        } => {
            let operator = operator_auth(credential.as_deref(), &flags.security)?;
            let deploy = Deploy {
                path: manifest,
                unit_size,
                healthy_threshold,
                wait: !no_wait,
            };
            return deploy_manifest(&master, flags.json, deploy, &operator).await;
        }
        Command::Rollout {
            command: RolloutCommand::Status,
        } => {
            let v = device_manager(&master, reader, "/rollout").await?;
            print_either(flags.json, &v, || crate::machine_tables::rollout(&v));
        }
        Command::Rollback { credential } => {
            let operator = operator_auth(credential.as_deref(), &flags.security)?;
            if !flags.json {
                println!(
                    "asking the device manager beside {master} to roll the running rollout back"
                );
            }
            let v = post_json(&master, "/device-manager/rollback", json!({}), &operator).await?;
            print_either(flags.json, &v, || crate::machine_tables::rollout(&v));
        }
        Command::Kick { credential } => {
            let operator = operator_auth(credential.as_deref(), &flags.security)?;
            let v = post_json(&master, "/device-manager/kick", json!({}), &operator).await?;
            print_either(flags.json, &v, || {
                format!("kicked {} machine(s)\n", tables::text(&v["kicked"]))
            });
        }
        Command::Send {
            to,
            message,
            body,
            from,
        } => {
            let to: libactor::Upid = to.parse().with_context(|| format!("receiver {to}"))?;
            let from = from.unwrap_or_else(|| format!("keelctl@{}:1", to.host()));
            let from: libactor::Upid = from.parse().with_context(|| format!("sender {from}"))?;
            let tls = flags.security.tls("keelctl send")?;
            let full = crate::send_message::send(&from, &to, &message, &body, tls.as_ref()).await?;
            if flags.json {
                println!("{}", json!({"sent": full, "to": to.to_string()}));
            } else {
                println!("sent {full} to {to}");
            }
        }
        Command::Maintenance {
            command,
            credential,
        } => {
            let operator = operator_auth(credential.as_deref(), &flags.security)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            return crate::keelctl_operator::maintenance(
                &operator,
                master.address(),
                flags.json,
                command,
                now,
            )
            .await;
        }
        Command::Drain { agent, credential } => {
            return agent_command(
                &flags.security,
                &master,
                credential,
                &agent,
                AgentAction::Drain,
            )
            .await;
        }
        Command::Reactivate { agent, credential } => {
            let action = AgentAction::Reactivate;
            return agent_command(&flags.security, &master, credential, &agent, action).await;
        }
        Command::MarkGone { agent, credential } => {
            let action = AgentAction::MarkGone;
            return agent_command(&flags.security, &master, credential, &agent, action).await;
        }
        Command::Quota {
            command,
            credential,
        } => {
            let operator = operator_auth(credential.as_deref(), &flags.security)?;
            let master = master.address();
            return crate::keelctl_operator::quota(&operator, master, flags.json, command).await;
        }
        Command::Events { count, credential } => {
            let operator = operator_auth(credential.as_deref(), &flags.security)?;
            return crate::keelctl_operator::events(&operator, master.address(), flags.json, count)
                .await;
        }
        Command::Ca { .. } => unreachable!("handled before the master is resolved"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `keelctl drain|reactivate|mark-gone AGENT` as the operator `credential` proves.
async fn agent_command(
    security: &SecurityFlags,
    master: &libactor::Upid,
    credential: Option<std::path::PathBuf>,
    agent: &str,
    action: AgentAction,
) -> anyhow::Result<ExitCode> {
    let operator = operator_auth(credential.as_deref(), security)?;
    crate::keelctl_operator::agent_call(&operator, master.address(), agent, action).await
}

/// GETs one of the device manager's routes (it runs beside the leading master).
async fn device_manager(
    master: &libactor::Upid,
    reader: Option<&libactor::TlsConfig>,
    route: &str,
) -> anyhow::Result<serde_json::Value> {
    get_json_over(master.address(), reader, &format!("/device-manager{route}"))
        .await
        .with_context(|| {
            format!("asking the device manager beside {master} (does the master run --autopilot?)")
        })
}

/// POSTs `body` as JSON to `path` on the leading master's node, as `operator`; its JSON
/// answer.
async fn post_json(
    master: &libactor::Upid,
    path: &str,
    body: serde_json::Value,
    operator: &OperatorAuth,
) -> anyhow::Result<serde_json::Value> {
    let headers = [("content-type", "application/json".to_owned())];
    let reply = operator
        .post(master.address(), path, &headers, body.to_string().into())
        .await?;
    let text = String::from_utf8_lossy(&reply.body);
    if reply.status != 200 {
        bail!("{path} refused: {} {}", reply.status, text.trim());
    }
    serde_json::from_str(&text).with_context(|| format!("{path} answered no JSON"))
}

fn read_credential(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<authentication::Credential>> {
    Ok(path
        .map(authentication::Credential::from_file)
        .transpose()?)
}

/// The operator keelctl proves: `--credential` over HTTP Basic, and its `--tls-dir`
/// certificate over HTTPS when given.
fn operator_auth(
    credential: Option<&std::path::Path>,
    security: &SecurityFlags,
) -> anyhow::Result<OperatorAuth> {
    let tls = match &security.tls_dir {
        Some(dir) => Some(libactor::tls::dir::load(dir)?),
        None => None,
    };
    Ok(OperatorAuth {
        credential: read_credential(credential)?,
        tls,
    })
}

/// What `keelctl deploy` does.
struct Deploy {
    path: std::path::PathBuf,
    unit_size: u32,
    healthy_threshold: f64,
    wait: bool,
}

/// Uploads the manifest's files, starts the rollout and follows it unit by unit.
async fn deploy_manifest(
    master: &libactor::Upid,
    as_json: bool,
    deploy: Deploy,
    operator: &OperatorAuth,
) -> anyhow::Result<ExitCode> {
    if !(deploy.healthy_threshold > 0.0 && deploy.healthy_threshold <= 100.0) {
        bail!("--healthy-threshold must be a percentage in (0, 100]");
    }
    let text = std::fs::read_to_string(&deploy.path)
        .with_context(|| format!("reading {}", deploy.path.display()))?;
    let mut parsed = autopilot::manifest::parse(&text)?;
    let base = deploy
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let contents = autopilot::manifest::read_sources(&mut parsed, &base)?;
    let m = &parsed.manifest;
    if !as_json {
        println!(
            "deploying {} {} to machines of type {} in units of {} ({}% Healthy to go on), through {master}",
            m.name, m.version, m.machine_type, deploy.unit_size, deploy.healthy_threshold
        );
    }
    for ((file, source), data) in m.files.iter().zip(&parsed.sources).zip(contents) {
        if source.is_none() {
            continue;
        }
        let reply = operator
            .post(master.address(), "/deployment/files", &[], data.into())
            .await?;
        if reply.status != 200 {
            bail!(
                "uploading {}: {} {}",
                file.path,
                reply.status,
                String::from_utf8_lossy(&reply.body).trim()
            );
        }
        if !as_json {
            println!(
                "  uploaded {} ({} bytes, sha256 {})",
                file.path,
                file.size,
                &file.sha256[..12]
            );
        }
    }
    let body = json!({
        "manifest": autopilot::manifest::to_json(m),
        "unit_size": deploy.unit_size,
        "healthy_threshold": deploy.healthy_threshold / 100.0,
    });
    let mut v = post_json(master, "/device-manager/deploy", body, operator).await?;
    let mut shown = String::new();
    loop {
        let state = v["rollout"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // Printed only when something changed: a line of JSON, or the units' bars.
        let now = if as_json {
            format!("{}\n", v["rollout"])
        } else {
            crate::machine_tables::rollout(&v)
        };
        if now != shown {
            print!("{now}");
            shown = now;
        }
        match state.as_str() {
            "Succeeded" => return Ok(ExitCode::SUCCESS),
            "RolledBack" => return Ok(ExitCode::FAILURE),
            _ if !deploy.wait => return Ok(ExitCode::SUCCESS),
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        v = device_manager(master, operator.tls.as_ref(), "/rollout").await?;
    }
}

/// `text` safe in a query string.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_either(as_json: bool, value: &serde_json::Value, table: impl FnOnce() -> String) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    } else {
        print!("{}", table());
    }
}

/// What `keelctl execute` runs.
struct Launch {
    command: String,
    cpus: f64,
    mem: f64,
    instances: usize,
    name: String,
    ip: std::net::IpAddr,
    credential: Option<authentication::Credential>,
    tls: Option<libactor::TlsConfig>,
}

/// Runs `launch` as a one-off framework through `master`, following the leader `detector`
/// names when there is one.
async fn execute(
    master: &libactor::Upid,
    detector: Option<coordination::Detector>,
    as_json: bool,
    launch: Launch,
) -> anyhow::Result<ExitCode> {
    let Launch {
        command,
        cpus,
        mem,
        instances,
        name,
        ip,
        credential,
        tls,
    } = launch;
    if instances == 0 {
        bail!("--instances must be at least 1");
    }
    if !(cpus > 0.0 && mem > 0.0 && cpus.is_finite() && mem.is_finite()) {
        bail!("--cpus and --mem must be positive numbers");
    }
    let task_resources: Resources = format!("cpus:{cpus};mem:{mem}")
        .parse()
        .context("task resources")?;
    if !as_json {
        println!(
            "launching {instances} task(s) of `{command}` ({task_resources} each) through {master}"
        );
    }
    let node = crate::security_flags::secure(libactor::Node::builder(), tls)
        .bind(std::net::SocketAddr::new(ip, 0))
        .single_threaded()
        .start()
        .context("starting keelctl's node")?;
    let spec = BatchSpec {
        task_prefix: name.clone(),
        commands: vec![command; instances],
        task_resources,
    };
    let outcomes = run_batch(&node, master, detector, &name, spec, credential, |event| {
        if let BatchEvent::Status {
            task_id,
            state,
            agent,
            message,
        } = event
        {
            if as_json {
                println!(
                    "{}",
                    json!({"task": task_id, "state": state.as_str_name(), "agent": agent, "message": message})
                );
            } else {
                println!("  {task_id:<24} {:<14} {agent}  {message}", state.as_str_name());
            }
        }
    })
    .await?;
    node.shutdown().await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.state != TaskState::TaskFinished)
        .collect();
    if !as_json {
        println!(
            "{} task(s): {} finished, {} did not",
            outcomes.len(),
            outcomes.len() - failed.len(),
            failed.len()
        );
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
