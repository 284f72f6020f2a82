//! keel-default-executor: the executor an agent runs for a task group whose executor is
//! `DEFAULT` (Mesos's `mesos-default-executor`); see `slave::default_executor`. The agent
//! starts it from its `--launcher-dir` with the executor's environment; it takes no flags.

keel::global_allocator!();

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    keel::logging::init("info");
    slave::default_executor::run().await?;
    Ok(())
}
