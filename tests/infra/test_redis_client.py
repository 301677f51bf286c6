"""One way to name Redis, a server or Sentinels, for every client: the URL's syntax, what Celery is
given for it, and clients that follow a real failover (real redis-server processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.sentinel import MasterNotFoundError

from config.celery import celery_config
from config.settings import settings_from
from tests.support.redis_servers import MASTER, SentinelDeployment, sentinel_deployment
from worker.infra.redis_client import (
    SentinelUrl,
    is_sentinel_url,
    kombu_broker,
    parse_sentinel_url,
    redis_client,
)

THREE = "sentinel://:s3cret@10.0.0.1:26379;sentinel://10.0.0.2;sentinel://10.0.0.3:26380/2?master=outbox"


def test_a_sentinel_url_names_every_sentinel_the_primary_and_the_database() -> None:
    assert parse_sentinel_url(THREE) == SentinelUrl(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380)),
        master="outbox",
        db=2,
        password="s3cret",
    )
    assert is_sentinel_url(THREE) and not is_sentinel_url("redis://localhost:6379/0")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sentinel://10.0.0.1:26379/0", "must name the primary"),
        ("sentinel://10.0.0.1/0?master=a;sentinel://10.0.0.2/1", "db twice"),
        ("sentinel://10.0.0.1/zero?master=a", "must be a number"),
        ("sentinel://10.0.0.1?master=a&mastr=b", "unknown parameters: mastr"),
        ("sentinel://10.0.0.1?master=a;redis://10.0.0.2", "each Sentinel is sentinel://host:port"),
    ],
)
def test_a_bad_sentinel_url_is_refused_with_the_reason(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_sentinel_url(url)


def test_celery_gets_every_sentinel_as_an_alternate_and_the_primary_as_a_transport_option() -> None:
    config = celery_config(settings_from({"OUTBOX_BROKER_URL": THREE + "&sentinel_password=p%40ss"}))
    assert config["broker_url"] == ";".join(
        f"sentinel://:s3cret@{host}/2" for host in ("10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26380")
    )
    options = config["broker_transport_options"]
    assert options["master_name"] == "outbox" and options["sentinel_kwargs"] == {"password": "p@ss"}
    assert kombu_broker("redis://h:6379/3") == ("redis://h:6379/3", {})


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    with sentinel_deployment(tmp_path_factory.mktemp("sentinels")) as deployment:
        yield deployment


def test_a_client_through_sentinels_writes_to_whichever_server_is_primary(
    sentinels: SentinelDeployment,
) -> None:
    client = redis_client(sentinels.url(db=3))
    client.set("before", "1")
    sentinels.replicated()
    new = sentinels.fail_over(kill=False)  # SENTINEL FAILOVER: the old primary becomes a replica
    client.set("after", "2")  # the old connection meets a demoted server, the retry the new primary
    assert new.client(db=3).mget("before", "after") == [b"1", b"2"]


def test_a_sentinel_url_naming_an_unknown_primary_fails_clearly(sentinels: SentinelDeployment) -> None:
    with pytest.raises(MasterNotFoundError):
        redis_client(sentinels.url().replace(f"master={MASTER}", "master=nobody")).ping()


def test_kombu_reaches_the_primary_through_the_sentinels(
    sentinels: SentinelDeployment, tmp_path: Path
) -> None:
    from kombu import Connection

    url, options = kombu_broker(sentinels.url(db=4))
    with Connection(url, transport_options=options) as connection:
        queue = connection.SimpleQueue("sentinel-check")
        queue.put({"hello": "primary"})
        assert queue.get(timeout=10).payload == {"hello": "primary"}
        queue.close()
