//! keelctl: the operator's command line. Reads the cluster from the master's `/master/state`,
//! runs one-off commands as a framework (`execute`, like `mesos-execute`), and posts control
//! messages to any process (`send`). Human tables by default, `--json` for scripts.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use frameworks::examples::batch::{BatchEvent, BatchSpec};
use keel::example_runs::run_batch;
use keel::http_client::get_json;
use keel::master_address::MasterSource;
use keel::tables;
use protos::v1::TaskState;
use resources::Resources;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "keelctl", version, about = "Operate a Keel cluster.")]
struct Flags {
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
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    keel::logging::init("error");
    match run(flags).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keelctl: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// How long keelctl waits for ZooKeeper to name a leading master.
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    let source =
        MasterSource::parse(&flags.master).with_context(|| format!("--master {}", flags.master))?;
    // With ZooKeeper, ask whichever master leads now.
    let (master, _detector) = source.resolve(LEADER_WAIT).await?;
    let state = || async {
        get_json(master.address(), "/master/state")
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
        Command::Execute {
            command,
            cpus,
            mem,
            instances,
            name,
            ip,
            credential,
        } => {
            let credential = credential
                .as_deref()
                .map(authentication::Credential::from_file)
                .transpose()?;
            let launch = Launch {
                command,
                cpus,
                mem,
                instances,
                name,
                ip,
                credential,
            };
            return execute(&master, flags.json, launch).await;
        }
        Command::Machines => {
            let v = device_manager(&master, "/machines").await?;
            print_either(flags.json, &v, || keel::machine_tables::machines(&v));
        }
        Command::Machine { id } => {
            let path = format!("/machine?id={}", percent_encode(&id));
            let v = device_manager(&master, &path).await?;
            print_either(flags.json, &v, || keel::machine_tables::machine(&v));
        }
        Command::Watchdogs => {
            let v = device_manager(&master, "/machines").await?;
            let mut rows = Vec::new();
            for m in v["machines"].as_array().into_iter().flatten() {
                let id = m["id"].as_str().unwrap_or_default();
                let path = format!("/machine?id={}", percent_encode(id));
                let detail = device_manager(&master, &path).await?;
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
            let v = device_manager(&master, &format!("/audit?since={since}")).await?;
            print_either(flags.json, &v["audit"], || keel::machine_tables::audit(&v));
        }
        Command::Repair {
            machine,
            action,
            credential,
        } => {
            let credential = credential
                .as_deref()
                .map(authentication::Credential::from_file)
                .transpose()?;
            if !flags.json {
                println!(
                    "asking the device manager beside {master} to drain {machine} and {action} it"
                );
            }
            let v = repair(&master, &machine, &action, credential.as_ref()).await?;
            print_either(flags.json, &v, || {
                format!(
                    "accepted: {} will be drained and get {} (by {})\n",
                    tables::text(&v["machine"]),
                    tables::text(&v["action"]),
                    tables::text(&v["operator"]),
                )
            });
        }
        Command::Send { to, message, body } => {
            let to: libactor::Upid = to.parse().with_context(|| format!("receiver {to}"))?;
            let from: libactor::Upid = format!("keelctl@{}:1", to.host())
                .parse()
                .context("keelctl's own pid")?;
            let full = keel::send_message::send(&from, &to, &message, &body).await?;
            if flags.json {
                println!("{}", json!({"sent": full, "to": to.to_string()}));
            } else {
                println!("sent {full} to {to}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// GETs one of the device manager's routes (it runs beside the leading master).
async fn device_manager(master: &libactor::Upid, route: &str) -> anyhow::Result<serde_json::Value> {
    get_json(master.address(), &format!("/device-manager{route}"))
        .await
        .with_context(|| {
            format!("asking the device manager beside {master} (does the master run --autopilot?)")
        })
}

/// Posts an operator's repair order to the device manager.
async fn repair(
    master: &libactor::Upid,
    machine: &str,
    action: &str,
    credential: Option<&authentication::Credential>,
) -> anyhow::Result<serde_json::Value> {
    let mut headers = vec![("content-type", "application/json".to_owned())];
    if let Some(c) = credential {
        headers.push(("authorization", authentication::basic_authorization(c)));
    }
    let body = json!({"machine": machine, "action": action}).to_string();
    let reply = keel::http_client::request(
        master.address(),
        "POST",
        "/device-manager/repair",
        &headers,
        body.into(),
    )
    .await?;
    let text = String::from_utf8_lossy(&reply.body);
    if reply.status != 200 {
        bail!(
            "the device manager refused: {} {}",
            reply.status,
            text.trim()
        );
    }
    serde_json::from_str(&text).context("the device manager's reply is not JSON")
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
}

async fn execute(
    master: &libactor::Upid,
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
    let node = libactor::Node::builder()
        .bind(std::net::SocketAddr::new(ip, 0))
        .single_threaded()
        .start()
        .context("starting keelctl's node")?;
    let spec = BatchSpec {
        task_prefix: name.clone(),
        commands: vec![command; instances],
        task_resources,
    };
    let outcomes = run_batch(&node, master, &name, spec, credential, |event| {
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
