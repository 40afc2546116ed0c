"""
Title: Several worker processes on one machine
Author: keras-simclr developers
Description: Starts `keras-simclr pretrain` in N local worker processes that
train one model together, as N machines would.
Accelerator: CPU (each worker sees the machine's devices; on a real cluster
start one worker per machine)

TensorFlow (the default): each worker gets a `TF_CONFIG` naming every worker
on 127.0.0.1 and trains under `MultiWorkerMirroredStrategy`. JAX
(`--backend jax`): each process gets `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
`KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`
(`keras.distribution.initialize`) and trains under `DataParallel` over every
process's devices. Worker 0 is the chief: only it writes `--output_dir`.
Every worker's output is printed with a `[worker i]` prefix.

    python ../shared/data/extract.py ../shared/data/cifar10_jpeg.npz /tmp/c10 --per_class 3
    python examples/multi_worker_local.py --image_folder /tmp/c10 --output_dir /tmp/mw --small_steps

Flags after `--` go to `keras-simclr pretrain` unchanged, e.g.
`-- --epochs 20 --batch_size 256`. `--small_steps` trains a narrow network
(width 1/8) for one epoch at batch 8: about a minute on a CPU. A worker that
fails makes the others stop with an `error:` line; this script then stops
whatever still runs and exits with the first failure's status.
"""

"""
## Setup
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading

SMALL_STEPS = [
    "--epochs",
    "1",
    "--batch_size",
    "8",
    "--width_multiplier",
    "0.125",
    "--projection_dim",
    "16",
    "--knn_every",
    "0",
    "--knn_k",
    "10",
    "--verbose",
    "2",
]


def free_ports(count):
    """`count` TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_env(backend, index, ports):
    """The environment of worker `index`: its cluster description."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    addresses = [f"127.0.0.1:{port}" for port in ports]
    if backend == "tensorflow":
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        )
    else:
        env["KERAS_DISTRIBUTION_JOB_ADDRESSES"] = ",".join(addresses)
        env["KERAS_DISTRIBUTION_NUM_PROCESSES"] = str(len(ports))
        env["KERAS_DISTRIBUTION_PROCESS_ID"] = str(index)
    return env


def relay(prefix, stream):
    for line in stream:
        sys.stdout.write(f"{prefix} {line}")
        sys.stdout.flush()


"""
## Start the workers and wait for them
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    parser.add_argument("--image_folder", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--small_steps", action="store_true")
    args, rest = parser.parse_known_args(argv)
    extra = [flag for flag in rest if flag != "--"]
    ports = free_ports(args.workers)
    command = [
        sys.executable,
        "-m",
        "keras_simclr.cli.main",
        "pretrain",
        "--image_folder",
        args.image_folder,
        "--output_dir",
        args.output_dir,
        *(SMALL_STEPS if args.small_steps else []),
        *extra,
    ]
    workers, relays = [], []
    for index in range(args.workers):
        process = subprocess.Popen(
            command,
            env=worker_env(args.backend, index, ports),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        workers.append(process)
        thread = threading.Thread(target=relay, args=(f"[worker {index}]", process.stdout))
        thread.start()
        relays.append(thread)
    status = 0
    try:
        for index, process in enumerate(workers):
            code = process.wait()
            if code and not status:
                status = code if code > 0 else 128 - code
                print(f"[launcher] worker {index} exited with status {code}")
    except KeyboardInterrupt:
        status = 130
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in workers:
            process.wait()
    for thread in relays:
        thread.join()
    if status == 0:
        print(f"[launcher] all {args.workers} workers finished; outputs in {args.output_dir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
