"""Private `redis-server` processes for tests that need Redis of their own: one server bound where the
test says, or a Sentinel deployment (a primary, a replica, three Sentinels) that can fail over.

Every server runs on a free port in the test's directory and is stopped (and reaped) at the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.simulator import free_port
from tests.support.stack import wait_for

MASTER = "outbox"


def redis_server_binary() -> str:
    """The installed `redis-server`, or the test is skipped (fails in CI) with the reason."""
    binary = shutil.which("redis-server")
    if binary is None:
        from tests.support.services import missing

        missing("redis-server (the binary)", "not installed: apt-get install redis-server")
    return str(binary)


@dataclass
class Server:
    """One redis-server process."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    host: str = "127.0.0.1"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=5, socket_connect_timeout=2)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL: it dies at once, with whatever it had not replicated)."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(workdir: Path, name: str, config: list[str], bind: str = "127.0.0.1") -> Server:
    """Start redis-server with `config` lines (its own port, bound to `bind`); wait until it answers."""
    port = free_port()
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "redis.conf"
    lines = [
        f"port {port}",
        f"bind {bind}",
        f"dir {directory}",
        "save ''",
        "appendonly no",
        "protected-mode no",
    ]
    lines += config
    conf.write_text("\n".join(lines) + "\n")
    log = directory / "log"
    sentinel = any(line.startswith("sentinel ") for line in config)
    argv = [redis_server_binary(), str(conf), *(["--sentinel"] if sentinel else [])]
    process = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=directory)
    server = Server(port, process, log, bind)
    wait_for(lambda: _answers(server), 30, 0.05, f"{name} (redis-server on {bind}:{port}) to answer")
    return server


def _answers(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"redis-server exited:\n{server.log.read_text(errors='replace')[-2000:]}")
    try:
        return bool(server.client().ping())
    except redis.RedisError:
        return False


@contextmanager
def private_redis(workdir: Path, bind: str = "127.0.0.1") -> Iterator[Server]:
    """One redis-server of the test's own."""
    server = start_server(workdir, f"redis-{os.getpid()}-{time.monotonic_ns()}", [], bind)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class SentinelDeployment:
    """A primary, its replicas and three Sentinels watching them as `MASTER`."""

    workdir: Path
    servers: list[Server]
    sentinels: list[Server]
    killed: list[Server] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        """The Sentinel URL, as an operator writes it."""
        hosts = ";".join(f"sentinel://{s.host}:{s.port}" for s in self.sentinels)
        return f"{hosts}/{db}?master={MASTER}"

    def primary(self) -> Server:
        """The server the Sentinels name as primary now."""
        _host, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(MASTER)
        return next(s for s in self.servers if s.port == int(port))

    def replicated(self) -> None:
        """Wait until every live replica has caught up with the primary."""
        primary = self.primary().client()
        replicas = len([s for s in self.servers if s.process.poll() is None]) - 1
        wait_for(lambda: primary.wait(replicas, 1000) >= replicas, 30, 0.1, "the replicas to catch up")

    def fail_over(self, kill: bool = True, demoted: bool = True) -> Server:
        """Lose the primary (SIGKILL, or a `SENTINEL FAILOVER`) and wait until a replica is primary and
        every Sentinel says so (and, unless `demoted` is False, the old primary is a replica); returns
        the new primary."""
        old = self.primary()
        if kill:
            old.stop(signal.SIGKILL)
            self.killed.append(old)
            return self.await_new_primary(old)
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER)
        new = self.await_new_primary(old)
        # Until the Sentinels demote it, the old primary still takes writes from connections that
        # were open to it (the rate limiter's primary fence is what keeps them harmless).
        if demoted:
            wait_for(lambda: role(old) == b"slave", 60, 0.1, "the old primary to be demoted")
        return new

    def await_new_primary(self, old: Server) -> Server:
        def promoted() -> Server | None:
            try:
                named = {int(s.client().sentinel_get_master_addr_by_name(MASTER)[1]) for s in self.sentinels}
                new = next((s for s in self.servers if s.port in named), None)
                if len(named) == 1 and new is not None and new is not old:
                    return new if new.client().execute_command("ROLE")[0] == b"master" else None
            except redis.RedisError:
                return None
            return None

        return wait_for(promoted, 60, 0.1, "the Sentinels to promote a replica")


@contextmanager
def sentinel_deployment(
    workdir: Path, replicas: int = 1, bind: str = "127.0.0.1", primary_config: Sequence[str] = ()
) -> Iterator[SentinelDeployment]:
    """A primary, `replicas` replicas and three Sentinels (quorum 2, a primary is down after 1 s);
    `primary_config` adds lines to the first primary's configuration."""
    with ExitStack() as stack:
        primary = start_server(workdir, "primary", list(primary_config), bind)
        stack.callback(primary.stop)
        servers = [primary]
        for n in range(replicas):
            replica = start_server(workdir, f"replica{n}", [f"replicaof {bind} {primary.port}"], bind)
            stack.callback(replica.stop)
            servers.append(replica)
        watch = [
            f"sentinel monitor {MASTER} {bind} {primary.port} 2",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 4000",
            f"sentinel parallel-syncs {MASTER} 1",
        ]
        sentinels = []
        for n in range(3):
            sentinel = start_server(workdir, f"sentinel{n}", watch, bind)
            stack.callback(sentinel.stop)
            sentinels.append(sentinel)
        deployment = SentinelDeployment(workdir, servers, sentinels)
        wait_for(lambda: _sentinels_see_everyone(deployment, replicas), 60, 0.2, "the Sentinels to meet")
        yield deployment


def role(server: Server) -> bytes | None:
    """What the server says it is (b"master", b"slave"), or None when it does not answer."""
    try:
        return server.client().execute_command("ROLE")[0]  # type: ignore[no-any-return]
    except redis.RedisError:
        return None


def _sentinels_see_everyone(deployment: SentinelDeployment, replicas: int) -> bool:
    try:
        for sentinel in deployment.sentinels:
            client = sentinel.client()
            master = client.sentinel_master(MASTER)
            if int(master["num-other-sentinels"]) < 2 or len(client.sentinel_slaves(MASTER)) < replicas:
                return False
        return True
    except redis.RedisError:
        return False
