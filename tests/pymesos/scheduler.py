"""A pymesos scheduler, as its users write one: runs N command tasks on a Keel master over the
v1 scheduler HTTP API and exits 0 once every task has finished (1 if one fails, 2 on a
timeout). pymesos itself is not modified.

    scheduler.py MASTER N COMMAND [PRINCIPAL SECRET [group]]

MASTER is host:port or zk://host:port/path. With `group`, the N tasks go as one task group
(LAUNCH_GROUP) on the agent's default executor. Each event is printed as one line, for the test.
"""

import getpass
import logging
import sys
import threading

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE"}


class Tasks(Scheduler):
    def __init__(self, count, command, group):
        self.count = count
        self.command = command
        self.group = group
        self.launched = 0
        self.finished = set()
        self.failed = False
        self.done = threading.Event()

    def registered(self, driver, framework_id, master_info):
        print("registered", framework_id.value, flush=True)

    def reregistered(self, driver, master_info):
        print("reregistered", flush=True)

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus = sum(r.scalar.value for r in offer.resources if r.name == "cpus")
            tasks = []
            if self.group and self.launched == 0 and cpus >= 0.1 * (self.count + 1):
                self.launch_group(driver, offer)
                continue
            while not self.group and self.launched < self.count and cpus >= 0.1:
                task = Dict()
                task.task_id.value = "py-%d" % self.launched
                task.agent_id.value = offer.agent_id.value
                task.name = task.task_id.value
                task.command.value = self.command
                task.resources = [
                    dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
                    dict(name="mem", type="SCALAR", scalar={"value": 16}),
                ]
                tasks.append(task)
                self.launched += 1
                cpus -= 0.1
            if tasks:
                print("launching", len(tasks), "on", offer.agent_id.value, flush=True)
                driver.launchTasks(offer.id, tasks, {"refuse_seconds": 1})
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 60})

    def launch_group(self, driver, offer):
        resources = [
            dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
            dict(name="mem", type="SCALAR", scalar={"value": 16}),
        ]
        executor = Dict()
        executor.type = "DEFAULT"
        executor.executor_id.value = "py-group"
        executor.resources = resources
        tasks = []
        for i in range(self.count):
            task = Dict()
            task.task_id.value = "py-%d" % i
            task.agent_id.value = offer.agent_id.value
            task.name = task.task_id.value
            task.command.value = self.command
            task.resources = resources
            tasks.append(task)
        self.launched = self.count
        print("launching group of", len(tasks), "on", offer.agent_id.value, flush=True)
        operation = dict(type="LAUNCH_GROUP",
                         launch_group=dict(executor=executor, task_group=dict(tasks=tasks)))
        driver.acceptOffers([offer.id], [operation], {"refuse_seconds": 1})

    def statusUpdate(self, driver, update):
        print("update", update.task_id.value, update.state, flush=True)
        if update.state in TERMINAL:
            if update.state != "TASK_FINISHED":
                self.failed = True
                self.done.set()
            self.finished.add(update.task_id.value)
            if len(self.finished) == self.count:
                self.done.set()

    def error(self, driver, message):
        print("error", message, flush=True)
        self.failed = True
        self.done.set()


def main():
    logging.basicConfig(level=logging.WARNING)
    master, count, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    principal, secret = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
    group = len(sys.argv) > 6 and sys.argv[6] == "group"
    framework = Dict()
    framework.user = getpass.getuser()
    framework.name = "pymesos-tasks"
    framework.failover_timeout = 60
    scheduler = Tasks(count, command, group)
    driver = MesosSchedulerDriver(scheduler, framework, master, use_addict=True,
                                  principal=principal, secret=secret)
    driver.start()
    finished = scheduler.done.wait(120)
    driver.stop()
    driver.join()
    if not finished:
        print("timeout", flush=True)
        sys.exit(2)
    print("failed" if scheduler.failed else "all finished", flush=True)
    sys.exit(1 if scheduler.failed else 0)


if __name__ == "__main__":
    main()
