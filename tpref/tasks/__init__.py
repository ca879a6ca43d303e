"""Tasks of the paper's experiments (Sec. 4): seeded batch streams in the oracle's layout.

A task yields (x, y) with x of shape (T, B, d), time-major. Training batches are a function
of (seed, iteration) only, so a resumed run sees exactly the batches it would have seen.

    task = make_task("temporal-order", length=60)
    x, y = task.train_batch(seed=0, iteration=17, batch_size=20)   # (60, 20, 6), (20,)
    for x, y in task.eval_batches(seed=0, size=1000): ...

Tasks: ``temporal-order``, ``adding`` (synthetic, no data); ``mnist``, ``pmnist``
(permuted MNIST), ``fashion-mnist``, ``cifar10`` (read from the official files).
"""

from .base import TASK_NAMES, Task, make_task
from .images import DataError

__all__ = ["TASK_NAMES", "Task", "make_task", "DataError"]
