"""A pymesos scheduler with a pymesos executor (executor.py), both unmodified pymesos: it
launches N tasks on one custom executor, answers each task's framework message with
"finish <task>", and exits 0 once every task has finished (1 on a failure, 2 on a timeout).
With `hold`, it answers only once a line "go" arrives on its standard input (a test restarts
the agent meanwhile).

    messages.py MASTER N [hold]
"""

import getpass
import logging
import os
import sys
import threading

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler, decode_data, encode_data


class Messages(Scheduler):
    def __init__(self, count, hold):
        self.count = count
        self.hold = threading.Event()
        if not hold:
            self.hold.set()
        self.launched = 0
        self.finished = set()
        self.failed = False
        self.done = threading.Event()
        here = os.path.dirname(os.path.abspath(__file__))
        self.executor = Dict()
        self.executor.executor_id.value = "echo"
        self.executor.name = "echo"
        self.executor.command.value = "%s %s" % (sys.executable, os.path.join(here, "executor.py"))
        self.executor.resources = [
            dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
            dict(name="mem", type="SCALAR", scalar={"value": 64}),
        ]

    def resourceOffers(self, driver, offers):
        for offer in offers:
            if self.launched >= self.count:
                driver.declineOffer(offer.id, {"refuse_seconds": 60})
                continue
            tasks = []
            while self.launched < self.count:
                task = Dict()
                task.task_id.value = "msg-%d" % self.launched
                task.agent_id.value = offer.agent_id.value
                task.name = task.task_id.value
                task.executor = self.executor
                task.resources = [
                    dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
                    dict(name="mem", type="SCALAR", scalar={"value": 16}),
                ]
                tasks.append(task)
                self.launched += 1
            print("launching", len(tasks), flush=True)
            driver.launchTasks(offer.id, tasks, {"refuse_seconds": 1})

    def frameworkMessage(self, driver, executor_id, agent_id, message):
        text = decode_data(message).decode()
        print("message", text, flush=True)
        task = text.rsplit(" ", 1)[1]

        def answer():
            self.hold.wait()
            driver.sendFrameworkMessage(
                executor_id, agent_id, encode_data(("finish " + task).encode())
            )

        threading.Thread(target=answer, daemon=True).start()

    def statusUpdate(self, driver, update):
        print("update", update.task_id.value, update.state, flush=True)
        if update.state == "TASK_FINISHED":
            self.finished.add(update.task_id.value)
            if len(self.finished) == self.count:
                self.done.set()
        elif update.state in ("TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED"):
            self.failed = True
            self.done.set()


def main():
    logging.basicConfig(level=logging.WARNING)
    master, count = sys.argv[1], int(sys.argv[2])
    hold = sys.argv[3:] == ["hold"]
    framework = Dict()
    framework.user = getpass.getuser()
    framework.name = "pymesos-messages"
    framework.checkpoint = True
    scheduler = Messages(count, hold)
    if hold:

        def release():
            for line in sys.stdin:
                if line.strip() == "go":
                    scheduler.hold.set()
                    return

        threading.Thread(target=release, daemon=True).start()
    driver = MesosSchedulerDriver(scheduler, framework, master, use_addict=True)
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
