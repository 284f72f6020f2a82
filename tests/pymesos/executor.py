"""A pymesos executor, unmodified pymesos: each task it is given says TASK_RUNNING, sends its
framework a message naming the task, and finishes when the framework answers "finish <task>".
"""

import logging

from addict import Dict
from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data


class Echo(Executor):
    def __init__(self):
        self.tasks = {}

    def launchTask(self, driver, task):
        self.tasks[task.task_id.value] = task
        update = Dict()
        update.task_id.value = task.task_id.value
        update.state = "TASK_RUNNING"
        driver.sendStatusUpdate(update)
        driver.sendFrameworkMessage(encode_data(("hello from %s" % task.task_id.value).encode()))

    def frameworkMessage(self, driver, message):
        text = decode_data(message).decode()
        if text.startswith("finish "):
            task_id = text.split(" ", 1)[1]
            update = Dict()
            update.task_id.value = task_id
            update.state = "TASK_FINISHED"
            update.message = "finished on the framework's word"
            driver.sendStatusUpdate(update)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    MesosExecutorDriver(Echo(), use_addict=True).run()
