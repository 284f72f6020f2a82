//! The `command` repair driver: one operator command per action, run with `sh -c` and the
//! machine in its environment (`KEEL_MACHINE_ID`, `KEEL_HOSTNAME`, `KEEL_REPAIR_ACTION`);
//! exit status 0 is success, and the first bytes of stdout are the outcome's detail.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use protos::autopilot::{RepairAction, RepairOrder};

use super::RepairDriver;
use crate::bounded_command::run_bounded;
use crate::device_manager::action_name;
use crate::machine_gate::GateFuture;

/// Bytes of a command's stdout kept as the outcome's detail.
const MAX_DETAIL: usize = 256;

/// Runs an operator-configured command per action.
#[derive(Debug, Clone)]
pub struct CommandDriver {
    commands: Arc<BTreeMap<i32, String>>,
    timeout: Duration,
}

impl CommandDriver {
    /// Runs `commands[action]` for each order, for at most `timeout`; an action with no
    /// command fails.
    pub fn new(commands: BTreeMap<RepairAction, String>, timeout: Duration) -> CommandDriver {
        CommandDriver {
            commands: Arc::new(commands.into_iter().map(|(a, c)| (a as i32, c)).collect()),
            timeout,
        }
    }
}

impl RepairDriver for CommandDriver {
    fn name(&self) -> &'static str {
        "command"
    }

    fn carry_out(&self, order: &RepairOrder) -> GateFuture<Result<String, String>> {
        let action = order.action();
        let script = self.commands.get(&order.action).cloned();
        let timeout = self.timeout;
        let (machine, hostname) = (order.machine_id.clone(), order.hostname.clone());
        Box::pin(async move {
            let Some(script) = script else {
                return Err(format!("no command configured for {}", action_name(action)));
            };
            let mut command = tokio::process::Command::new("sh");
            command
                .arg("-c")
                .arg(&script)
                .env("KEEL_MACHINE_ID", &machine)
                .env("KEEL_HOSTNAME", &hostname)
                .env("KEEL_REPAIR_ACTION", action_name(action));
            match run_bounded(command, timeout, MAX_DETAIL).await {
                Ok((status, out)) if status.success() => Ok(out),
                Ok((status, out)) => Err(format!("{status}: {out}")),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(action: RepairAction) -> RepairOrder {
        RepairOrder {
            machine_id: "m1".into(),
            hostname: "host-1".into(),
            action: action as i32,
        }
    }

    #[tokio::test]
    async fn runs_the_actions_command_with_the_machine_in_its_environment() {
        let driver = CommandDriver::new(
            BTreeMap::from([
                (
                    RepairAction::Reboot,
                    "echo $KEEL_REPAIR_ACTION $KEEL_HOSTNAME".to_owned(),
                ),
                (RepairAction::Reimage, "echo no power; exit 4".to_owned()),
                (RepairAction::Replace, "sleep 5".to_owned()),
            ]),
            Duration::from_millis(200),
        );
        assert_eq!(
            driver.carry_out(&order(RepairAction::Reboot)).await,
            Ok("Reboot host-1".to_owned())
        );
        let failed = driver.carry_out(&order(RepairAction::Reimage)).await;
        assert!(
            failed.as_ref().is_err_and(|e| e.contains("no power")),
            "{failed:?}"
        );
        let hung = driver.carry_out(&order(RepairAction::Replace)).await;
        assert!(hung.as_ref().is_err_and(|e| e.contains("hung")), "{hung:?}");
        let none = driver.carry_out(&order(RepairAction::DoNothing)).await;
        assert!(none.is_err());
    }
}
