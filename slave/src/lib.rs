//! The Keel agent (`slave`): agent process, containerizer (cgroups / posix), executor supervision,
//! status update manager, checkpointing and recovery. (Filled in by the Mesos core and
//! containerizer issues.)
