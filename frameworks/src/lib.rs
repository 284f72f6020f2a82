//! The framework author's API: `Scheduler` and `Executor` traits with their drivers, the
//! command executor, and example frameworks. (Filled in by the Mesos core issue.)
