//! The simulated cell: machines with CPUs and memory, what is free on each, and a version that
//! changes with every placement and release on the machine (the master's per-agent version).

/// One machine.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    /// CPUs free.
    pub free_cpus: f64,
    /// Memory free, GiB.
    pub free_mem: f64,
    /// Changes with every placement and release here.
    pub version: u64,
    /// Running (a failed machine is down until repaired, and fits nothing).
    pub up: bool,
    /// Changes when the machine fails: tasks placed before belong to an older incarnation.
    pub incarnation: u64,
    /// Failures so far (the machine's record, as Autopilot's device manager keeps it).
    pub failures: u32,
}

/// Tolerance for floating-point sums of CPUs and memory.
const EPSILON: f64 = 1e-9;

impl Machine {
    /// Whether a task of `cpus` and `mem` fits in what is free.
    pub fn fits(&self, cpus: f64, mem: f64) -> bool {
        self.up && self.free_cpus + EPSILON >= cpus && self.free_mem + EPSILON >= mem
    }
}

/// Every machine of the cell.
#[derive(Debug, Clone)]
pub struct Cell {
    machines: Vec<Machine>,
    cpus: f64,
    mem: f64,
}

impl Cell {
    /// `n` machines of `cpus` and `mem` each, all free.
    pub fn new(n: usize, cpus: f64, mem: f64) -> Cell {
        Cell {
            machines: vec![
                Machine {
                    free_cpus: cpus,
                    free_mem: mem,
                    version: 0,
                    up: true,
                    incarnation: 0,
                    failures: 0,
                };
                n
            ],
            cpus,
            mem,
        }
    }

    /// How many machines.
    pub fn len(&self) -> usize {
        self.machines.len()
    }

    /// Whether the cell has no machine.
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }

    /// Machine `i`.
    pub fn machine(&self, i: usize) -> &Machine {
        &self.machines[i]
    }

    /// Every machine.
    pub fn machines(&self) -> &[Machine] {
        &self.machines
    }

    /// Places a task on machine `i` (it must fit).
    pub fn take(&mut self, i: usize, cpus: f64, mem: f64) {
        let m = &mut self.machines[i];
        debug_assert!(m.fits(cpus, mem), "{m:?} cannot take {cpus} {mem}");
        m.free_cpus -= cpus;
        m.free_mem -= mem;
        m.version += 1;
    }

    /// A task on machine `i` ended.
    pub fn release(&mut self, i: usize, cpus: f64, mem: f64) {
        let m = &mut self.machines[i];
        m.free_cpus = (m.free_cpus + cpus).min(self.cpus);
        m.free_mem = (m.free_mem + mem).min(self.mem);
        m.version += 1;
    }

    /// Machine `i` fails: everything on it is lost and it is down until repaired.
    pub fn fail(&mut self, i: usize) {
        let m = &mut self.machines[i];
        m.up = false;
        m.failures += 1;
        m.incarnation += 1;
        m.version += 1;
        m.free_cpus = self.cpus;
        m.free_mem = self.mem;
    }

    /// Machine `i` failed before the simulation started (its record).
    pub fn record_past_failure(&mut self, i: usize) {
        self.machines[i].failures += 1;
    }

    /// Machine `i` is back, empty.
    pub fn repair(&mut self, i: usize) {
        let m = &mut self.machines[i];
        m.up = true;
        m.version += 1;
    }

    /// The fraction of the cell's CPUs in use.
    pub fn cpu_utilization(&self) -> f64 {
        let free: f64 = self
            .machines
            .iter()
            .map(|m| if m.up { m.free_cpus } else { self.cpus })
            .sum();
        1.0 - free / (self.cpus * self.machines.len() as f64)
    }
}
